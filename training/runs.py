"""The run folder: `runs/<run_id>/` keeps what a run was asked to do and what it made, so an
archive's manifest (which names the run id) can be traced back to it (minGPT keeps its config
beside its checkpoints the same way)."""

import dataclasses
import json
import secrets
import sys
import time
from pathlib import Path

from archiver.manifest import package_versions
from weightstore.layout import REPO_ROOT

RUNS_DIR = REPO_ROOT / "runs"
CONFIG_FILE = "config.json"
SKIPPED_FILE = "skipped_images.json"


def new_run_id(kind: str) -> str:
    """`lora-20250101-120000-1a2b3c`: sortable by start time, unique across parallel runs."""
    return f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def new_run_dir(runs_dir: Path, run_id: str | None, kind: str) -> Path:
    """The folder of a new run; an existing one is refused so no run is overwritten."""
    run_dir = Path(runs_dir) / (run_id or new_run_id(kind))
    if run_dir.exists():
        raise ValueError(f"{run_dir} exists; pick another --run-id or --resume it")
    return run_dir


def to_jsonable(value):
    """Dataclasses, paths and tuples as plain JSON values."""
    if dataclasses.is_dataclass(value):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def write_run_config(run_dir: Path, config, argv: list | None = None, extra: dict | None = None) -> Path:
    """config.json: the resolved config, the command line and the package versions."""
    run_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "run_id": run_dir.name,
        "config": to_jsonable(config),
        "argv": list(sys.argv if argv is None else argv),
        "packages": package_versions(),
        **(extra or {}),
    }
    path = run_dir / CONFIG_FILE
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return path


def read_run_config(run_dir: Path) -> dict:
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {run_dir} is not a training run folder")
    return json.loads(path.read_text(encoding="utf-8"))


def resolve_run_dir(run: str | Path, runs_dir: Path = RUNS_DIR) -> Path:
    """A run folder given as a path or as a run id under `runs_dir`."""
    path = Path(run)
    if (path / CONFIG_FILE).is_file():
        return path
    if (Path(runs_dir) / str(run) / CONFIG_FILE).is_file():
        return Path(runs_dir) / str(run)
    raise FileNotFoundError(f"no training run {run!r} (looked for {path} and {Path(runs_dir) / str(run)})")


def write_skipped(run_dir: Path, skipped: list) -> Path:
    """Unreadable images: never fatal, always reported (count and reasons)."""
    path = run_dir / SKIPPED_FILE
    record = {"count": len(skipped), "images": [{"path": str(p), "reason": r} for p, r in skipped]}
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return path
