"""Build one capability's .mar: stage code, weights, manifest and model-config, run
torch-model-archiver, and move the result into the store atomically."""

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional

import yaml
from model_archiver.model_archiver_config import ModelArchiverConfig
from model_archiver.model_packaging import generate_model_archive

from archiver.capabilities import CAPABILITIES, Capability
from archiver.manifest import build_manifest
from archiver.versions import archive_name
from repo_paths import REPO_ROOT
from weightstore.layout import WeightsLayout

CODE_PACKAGES = ("handlers", "imagelab")
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc")


def build_archive(
    capability: Capability,
    layout: WeightsLayout,
    store: Path,
    version: str = "1.0",
    lineage: Optional[dict] = None,
) -> Path:
    """-> the path of the new archive in `store`. Nothing lands there unless all succeeded.
    A handler TorchServe could not load, a settings key the service does not know or a real
    LoRA that does not fit the base model fails here (ValueError), before anything is staged."""
    store = Path(store)
    capability.check_handler()
    plan = capability.build_plan(layout)
    store.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=store, prefix=".build-") as scratch:
        stage = Path(scratch) / "stage"
        for package in CODE_PACKAGES:
            shutil.copytree(REPO_ROOT / package, stage / package, ignore=_IGNORED)
        for weight in plan.weights:
            _stage_weight(weight.source, stage / weight.archive_path)
        manifest = build_manifest(capability.name, version, stage, plan, lineage)
        (stage / "manifest.json").write_text(json.dumps(manifest, indent=2))
        config = capability.handler_config(plan)
        config_path = Path(scratch) / "model-config.yaml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        out = Path(scratch) / "out"
        out.mkdir()
        with _private_tempdir(scratch):
            generate_model_archive(
                ModelArchiverConfig(
                    model_name=capability.name,
                    handler=str(capability.handler),
                    version=version,
                    extra_files=str(stage),
                    export_path=str(out),
                    config_file=str(config_path),
                    force=True,
                )
            )
        target = store / archive_name(capability.name, version)
        os.replace(out / f"{capability.name}.mar", target)
    return target


@contextlib.contextmanager
def _private_tempdir(path: str):
    """torch-model-archiver stages in {tempdir}/{model name}: two builds of one model at once
    (tests, training, a deploy) would share that folder. Give each build its own."""
    previous = tempfile.tempdir
    tempfile.tempdir = path
    try:
        yield
    finally:
        tempfile.tempdir = previous


def _stage_weight(source: Path, destination: Path) -> None:
    if not source.exists():
        raise FileNotFoundError(f"weight file missing: {source}")
    destination.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, destination, ignore=_IGNORED)
    else:
        shutil.copy2(source, destination)


def build_all(layout: WeightsLayout, store: Path, models=None, version: str = "1.0") -> list:
    names = models or list(CAPABILITIES)
    unknown = sorted(set(names) - set(CAPABILITIES))
    if unknown:
        raise ValueError(f"unknown models {unknown}; known: {sorted(CAPABILITIES)}")
    return [build_archive(CAPABILITIES[n], layout, store, version) for n in names]
