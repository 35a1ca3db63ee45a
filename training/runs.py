"""The run folder: `runs/<run_id>/` keeps what a run was asked to do and what it made, so an
archive's manifest (which names the run id) can be traced back to it (minGPT keeps its config
beside its checkpoints the same way). Both jobs end in a `TrainedRun`; `lineage_of` is what
the manifest records of it."""

import dataclasses
import json
import math
import secrets
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import torch

from archiver.manifest import package_versions
from imagelab.weights_io import sha256_of
from repo_paths import REPO_ROOT
from weightstore.layout import WeightsLayout

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


def weights_layout(weights_dir: Path | None) -> WeightsLayout:
    """The weights root a run reads its base models from: `weights_dir`, else weights/."""
    return WeightsLayout(weights_dir) if weights_dir else WeightsLayout.default()


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


class ParameterShare(NamedTuple):
    """How much of the trained network the optimizer moves (peft's print_trainable_parameters)."""

    trainable: int
    total: int

    @property
    def share(self) -> float:
        return self.trainable / self.total if self.total else 0.0

    def describe(self) -> str:
        return f"trainable parameters: {self.trainable:,} of {self.total:,} ({100 * self.share:.4g}%)"

    def to_record(self) -> dict:
        return {"trainable": self.trainable, "total": self.total, "share": self.share}


def parameter_share(module: torch.nn.Module) -> ParameterShare:
    parameters = list(module.parameters())
    return ParameterShare(sum(p.numel() for p in parameters if p.requires_grad), sum(p.numel() for p in parameters))


class TrainedRun(NamedTuple):
    """What either job hands on when it finishes: the exported weights and their history."""

    job: str  # "lora" or "fast_style"
    config: Any  # the job's frozen config dataclass
    run_dir: Path
    weights_path: Path  # the exported file, run_dir/export/<style>.safetensors
    steps: int  # optimizer steps taken
    metrics: list  # one dict per epoch
    skipped_images: int
    base_model_dir: Path | None = None  # LoRA: the SD 1.5 folder it was trained on
    best_path: Path | None = None  # LoRA: the epoch with the best CLIP score, export/clip-<score>.safetensors
    parameters: ParameterShare | None = None


WEIGHT_CHOICES = ("best", "last")


def best_row(metrics: list[dict], key: str = "clip_score") -> dict | None:
    """The first epoch's row with the highest finite `key`; None when no row has one."""
    best = None
    for row in metrics:
        value = row.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value) and (best is None or value > best[key]):
            best = row
    return best


def chosen_weights(run: TrainedRun, which: str = "best") -> Path:
    """The exported file to publish: `best` (by CLIP score, where the run kept one; else the
    last) or `last` (the weights after the final step)."""
    if which not in WEIGHT_CHOICES:
        raise ValueError(f"weights must be one of {list(WEIGHT_CHOICES)}, got {which!r}")
    return run.best_path if which == "best" and run.best_path is not None else run.weights_path


def lineage_of(run: TrainedRun, exported: Path | None = None) -> dict:
    """What the archive's manifest records under `training`; `exported` is the file the archive
    carries (default: chosen_weights(run), the best)."""
    exported = Path(exported) if exported is not None else chosen_weights(run)
    lineage = {
        "run_id": run.run_dir.name,
        "run_dir": str(run.run_dir.resolve()),
        "job": run.job,
        "config": to_jsonable(run.config),
        "steps": run.steps,
        "final_metrics": run.metrics[-1] if run.metrics else None,
        "exported": {"file": exported.name, "sha256": sha256_of(exported)},
        "skipped_images": run.skipped_images,
    }
    best = best_row(run.metrics)
    if run.best_path is not None and best is not None:
        lineage["best_by_clip_score"] = {
            "file": run.best_path.name,
            "epoch": best["epoch"],
            "clip_score": best["clip_score"],
        }
    if run.parameters is not None:
        lineage["parameters"] = run.parameters.to_record()
    if run.base_model_dir is not None:
        lineage["base_model"] = str(Path(run.base_model_dir).resolve())
    return lineage
