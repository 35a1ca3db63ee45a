"""Where weights live (API.md, "Where weights live") and which are real or synthetic.

Real weights are what users drop into `weights/`. Whatever is missing is synthesised into
`weights/.tiny/` with the same relative path, so a real file never gets overwritten and
`status` can always tell the two apart.

A synthetic companion made against a base model (a LoRA over the SD 1.5 UNet) records that
base model's identity beside it (`{file}.basis`, or `.basis` inside a folder); resolving it
against another base remakes it, so a stand-in never outlives the model it was shaped for.
"""

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from imagelab.weights_io import STATE_DICT_SUFFIXES
from repo_paths import WEIGHTS_DIR

logger = logging.getLogger(__name__)

WEIGHTS_ENV = "IMAGELAB_WEIGHTS"
BASIS_SUFFIX = ".basis"


@dataclass(frozen=True)
class ResolvedWeight:
    path: Path
    synthetic: bool
    basis: Optional[str] = None  # identity of the base model a synthetic companion was made for


@dataclass(frozen=True)
class WeightsLayout:
    root: Path

    @staticmethod
    def default() -> "WeightsLayout":
        return WeightsLayout(Path(os.environ.get(WEIGHTS_ENV, WEIGHTS_DIR)))

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

    def real_dir(self, name: str, marker: str) -> Optional[Path]:
        real = self.root / name
        return real if (real / marker).is_file() else None

    def synthetic_file(self, stem: str) -> Path:
        return self.tiny_root / f"{stem}.safetensors"

    def synthetic_dir(self, name: str) -> Path:
        return self.tiny_root / name

    def resolve_file(
        self, stem: str, synthesize: Callable[[Path], Path], basis: Optional[str] = None
    ) -> ResolvedWeight:
        """The real file for `stem`, else its synthetic twin (made once, then reused while it
        was made for `basis`, the identity of the base model it depends on, if any)."""
        real = self.find_real(stem)
        if real is not None:
            return ResolvedWeight(real, synthetic=False)
        tiny = self.synthetic_file(stem)
        if not tiny.is_file() or not _made_for(basis_file(tiny), basis):
            _remaking(tiny, basis)
            _atomic_synthesize(tiny, synthesize)
            _write_basis(basis_file(tiny), basis)
        return ResolvedWeight(tiny, synthetic=True, basis=basis)

    def resolve_dir(
        self, name: str, marker: str, synthesize: Callable[[Path], Path], basis: Optional[str] = None
    ) -> ResolvedWeight:
        """A folder such as sd15/ (recognised by its marker file), else its synthetic twin."""
        real = self.real_dir(name, marker)
        if real is not None:
            return ResolvedWeight(real, synthetic=False)
        tiny = self.synthetic_dir(name)
        if not (tiny / marker).is_file() or not _made_for(basis_file(tiny), basis):
            _remaking(tiny, basis)

            def synthesize_with_basis(out: Path) -> Path:
                synthesize(out)
                _write_basis(basis_file(out), basis)  # inside the folder: renamed in with it
                return out

            _atomic_synthesize(tiny, synthesize_with_basis)
        return ResolvedWeight(tiny, synthetic=True, basis=basis)


def basis_file(synthetic: Path) -> Path:
    """Where a synthetic file or folder records the base model it was made for."""
    return synthetic / BASIS_SUFFIX if synthetic.is_dir() else synthetic.with_name(synthetic.name + BASIS_SUFFIX)


def recorded_basis(synthetic: Path) -> Optional[str]:
    """The base identity a synthetic companion was made for; None when unrecorded."""
    try:
        return basis_file(synthetic).read_text().strip() or None
    except OSError:
        return None


def _made_for(record: Path, basis: Optional[str]) -> bool:
    if basis is None:
        return True  # not made against any base model
    try:
        return record.read_text().strip() == basis
    except OSError:
        return False  # made before bases were recorded, or interrupted: remake


def _remaking(target: Path, basis: Optional[str]) -> None:
    if target.exists():
        logger.info(
            "%s was made for base model %s, not %s: synthesising it again",
            target,
            (recorded_basis(target) or "unknown")[:12],
            basis[:12],
        )


def _write_basis(record: Path, basis: Optional[str]) -> None:
    if basis is None:
        return
    staged = record.with_name(f".{record.name}.{os.getpid()}.tmp")
    staged.write_text(basis + "\n")
    os.replace(staged, record)


def _atomic_synthesize(target: Path, synthesize: Callable[[Path], Path]) -> None:
    """Synthesise beside the target and rename, so an interrupted run leaves nothing half-made."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".synth-") as scratch:
        staged = Path(scratch) / target.name
        synthesize(staged)
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        os.replace(staged, target)
