"""Exported weights -> the next archive version (with the run's lineage) -> optionally deployed.

The archiver plans an archive from a weights root (archiver/capabilities.py). A trained file is
published by planning from an overlay of the real root: a scratch folder whose entries are
symlinks to everything in weights/ (the tiny twins in .tiny/ included), except that the file the
plan looks for (lora/animals.safetensors, lora/<style>.safetensors,
fast_style/<style>.safetensors) is the trained one. weights/ itself is never modified.
"""

import shutil
import tempfile
from pathlib import Path
from typing import NamedTuple

from archiver.build import build_archive
from archiver.capabilities import CAPABILITIES
from weightstore.layout import REPO_ROOT, WeightsLayout

DEFAULT_STORE = REPO_ROOT / "model_store"
DEFAULT_WORKDIR = REPO_ROOT / "var" / "serve"


class Published(NamedTuple):
    archive: Path
    model: str
    version: str


def overlay_weights(base_root: Path, overlay_root: Path, replacements: dict[str, Path]) -> WeightsLayout:
    """`overlay_root` mirrors `base_root` by symlinks, with `replacements` ({"lora/x.safetensors":
    trained file}) copied in. Files of a replaced stem with another suffix (x.pth) are left out,
    so the trained file is the only candidate the plan can pick."""
    base_root, overlay_root = Path(base_root), Path(overlay_root)
    overlay_root.mkdir(parents=True, exist_ok=True)
    replaced_dirs = {Path(r).parts[0] for r in replacements}
    replaced_stems = {Path(r).with_suffix("").as_posix() for r in replacements}
    if base_root.is_dir():
        for entry in sorted(base_root.iterdir()):
            if entry.name not in replaced_dirs:
                (overlay_root / entry.name).symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
                continue
            (overlay_root / entry.name).mkdir()
            for child in sorted(entry.iterdir()):
                if f"{entry.name}/{child.stem}" not in replaced_stems:
                    (overlay_root / entry.name / child.name).symlink_to(child.resolve())
    for relative, source in replacements.items():
        target = overlay_root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    return WeightsLayout(overlay_root)


def next_version_in(store: Path, model: str) -> str:
    """archiver.versions.next_version: one major above the store's highest version of `model`."""
    from archiver.versions import next_version

    return next_version(store, model)


def publish(
    model: str,
    trained_file: Path,
    archive_path: str,
    weights_root: Path,
    store: Path,
    lineage: dict,
    version: str | None = None,
    base_model_dir: Path | None = None,
) -> Published:
    """Build the next version of `model` with `trained_file` at `archive_path` of the weights
    layout. `base_model_dir`: the SD 1.5 folder the LoRA was trained on; the archive must use
    the same one, or the LoRA would be applied to weights it never saw."""
    if model not in CAPABILITIES:
        raise ValueError(f"model must be one of {sorted(CAPABILITIES)}, got {model!r}")
    store = Path(store)
    version = version or next_version_in(store, model)
    with tempfile.TemporaryDirectory(prefix="imagelab-overlay-") as scratch:
        layout = overlay_weights(weights_root, Path(scratch) / "weights", {archive_path: trained_file})
        if base_model_dir is not None:
            base = layout.resolve_dir("sd15", "model_index.json", _no_synthesis)
            if base.path.resolve() != Path(base_model_dir).resolve():
                raise ValueError(
                    f"the LoRA was trained on {base_model_dir} but a {model} archive from "
                    f"{weights_root} would use {base.path.resolve()}; train with that model"
                )
        archive = build_archive(CAPABILITIES[model], layout, store, version, lineage=lineage)
    return Published(archive, model, version)


def _no_synthesis(out: Path) -> Path:
    raise FileNotFoundError(
        "no SD 1.5 folder (real or tiny) in the weights root; run `python -m archiver weights synth`"
    )


def deploy_archive(archive: Path, workdir: Path = DEFAULT_WORKDIR, workers: int = 1):
    """The lifecycle deploy flow (operations/deploy.py): register, smoke-test, set default.
    The archive must be in the running server's model store (TorchServe registers by name)."""
    from operations.deploy import Endpoint, deploy

    return deploy(Endpoint.from_workdir(Path(workdir)), Path(archive), workers=workers)


def announce(published: Published, deploy: bool, workdir: Path) -> None:
    """Print the built version and, when asked, deploy it; a failed deploy keeps the archive."""
    print(f"built {published.archive} ({published.model} {published.version})")
    if not deploy:
        return
    try:
        result = deploy_archive(published.archive, workdir)
    except Exception as error:  # DeployError, RuntimeError: the archive stays built
        raise SystemExit(f"error: deploy failed: {error}") from None
    print(f"deployed {result.model} {result.version} (previous default: {result.previous_default})")
