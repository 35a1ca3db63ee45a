"""The manifest inside every archive: which weights (by sha256), from where, made how."""

import importlib.metadata
import time
from pathlib import Path
from typing import Optional

from imagelab.weights_io import sha256_of

PACKAGES = ("torch", "torchvision", "diffusers", "transformers", "peft", "safetensors", "pillow", "torchserve")


def package_versions() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def weight_entries(stage_root: Path, weights: list) -> list:
    """One entry per file as staged in the archive (folders are listed file by file)."""
    entries = []
    for weight in weights:
        staged = stage_root / weight.archive_path
        files = sorted(p for p in staged.rglob("*") if p.is_file()) if staged.is_dir() else [staged]
        for path in files:
            entries.append(
                {
                    "path": path.relative_to(stage_root).as_posix(),
                    "sha256": sha256_of(path),
                    "bytes": path.stat().st_size,
                    "synthetic": weight.synthetic,
                }
            )
    return entries


def build_manifest(model: str, version: str, stage_root: Path, plan, lineage: Optional[dict] = None) -> dict:
    return {
        "model": model,
        "version": version,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "weights": weight_entries(stage_root, plan.weights),
        "synthetic": any(w.synthetic for w in plan.weights),
        "base_model": plan.base_model,
        "training": lineage,
        "packages": package_versions(),
    }


def verify_manifest(stage_root: Path, manifest: dict) -> list:
    """Paths whose bytes no longer match the manifest (empty when all match)."""
    return [
        entry["path"]
        for entry in manifest["weights"]
        if not (stage_root / entry["path"]).is_file() or sha256_of(stage_root / entry["path"]) != entry["sha256"]
    ]
