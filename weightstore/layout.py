"""Where weights live (API.md, "Where weights live") and which are real or synthetic.

Real weights are what users drop into `weights/`. Whatever is missing is synthesised into
`weights/.tiny/` with the same relative path, so a real file never gets overwritten and
`status` can always tell the two apart.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

REPO_ROOT = Path(__file__).resolve().parent.parent
STATE_DICT_SUFFIXES = (".safetensors", ".pth", ".pt")


@dataclass(frozen=True)
class ResolvedWeight:
    path: Path
    synthetic: bool


@dataclass(frozen=True)
class WeightsLayout:
    root: Path

    @staticmethod
    def default() -> "WeightsLayout":
        return WeightsLayout(Path(os.environ.get("IMAGELAB_WEIGHTS", REPO_ROOT / "weights")))

    @property
    def tiny_root(self) -> Path:
        return self.root / ".tiny"

    def find_real(self, stem: str) -> Optional[Path]:
        """`fast_style/candy` -> weights/fast_style/candy.{safetensors,pth,pt} if present."""
        for suffix in STATE_DICT_SUFFIXES:
            path = self.root / f"{stem}{suffix}"
            if path.is_file():
                return path
        return None

    def first_real_in(self, folder: str) -> Optional[Path]:
        """The first state-dict file (by name) in weights/{folder}/, for single-file folders
        whose file names vary (vgg19-dcbb9e9d.pth)."""
        directory = self.root / folder
        if not directory.is_dir():
            return None
        files = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix in STATE_DICT_SUFFIXES)
        return files[0] if files else None

    def resolve_file(self, stem: str, synthesize: Callable[[Path], Path]) -> ResolvedWeight:
        """The real file for `stem`, else its synthetic twin (made once, then reused)."""
        real = self.find_real(stem)
        if real is not None:
            return ResolvedWeight(real, synthetic=False)
        tiny = self.tiny_root / f"{stem}.safetensors"
        if not tiny.is_file():
            _atomic_synthesize(tiny, synthesize)
        return ResolvedWeight(tiny, synthetic=True)

    def resolve_dir(self, name: str, marker: str, synthesize: Callable[[Path], Path]) -> ResolvedWeight:
        """A folder such as sd15/ (recognised by its marker file), else its synthetic twin."""
        real = self.root / name
        if (real / marker).is_file():
            return ResolvedWeight(real, synthetic=False)
        tiny = self.tiny_root / name
        if not (tiny / marker).is_file():
            _atomic_synthesize(tiny, synthesize)
        return ResolvedWeight(tiny, synthetic=True)


def _atomic_synthesize(target: Path, synthesize: Callable[[Path], Path]) -> None:
    """Synthesise beside the target and rename, so an interrupted run leaves nothing half-made."""
    import shutil
    import tempfile

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".synth-") as scratch:
        staged = Path(scratch) / target.name
        synthesize(staged)
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        os.replace(staged, target)
