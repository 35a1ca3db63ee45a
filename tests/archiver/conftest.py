"""Small fake .mar files with the parts the lifecycle code reads: MAR-INF/MANIFEST.json,
model-config.yaml and the archiver's manifest.json with weight hashes."""

import hashlib
import json
import zipfile
from pathlib import Path

import pytest
import yaml


def write_mar(
    path: Path, model: str, version: str, weights: dict = None, config: dict = None, manifest_overrides: dict = None
) -> Path:
    weights = weights if weights is not None else {"weights/candy.safetensors": b"candy-bytes"}
    manifest = {
        "model": model,
        "version": version,
        "weights": [
            {"path": p, "sha256": hashlib.sha256(b).hexdigest(), "bytes": len(b), "synthetic": True}
            for p, b in weights.items()
        ],
        **(manifest_overrides or {}),
    }
    with zipfile.ZipFile(path, "w") as bundle:
        bundle.writestr(
            "MAR-INF/MANIFEST.json",
            json.dumps(
                {
                    "runtime": "python",
                    "model": {
                        "modelName": model,
                        "modelVersion": version,
                        "handler": "h.py",
                        "configFile": "model-config.yaml",
                    },
                }
            ),
        )
        config = config or {"minWorkers": 1, "maxWorkers": 2, "batchSize": 8, "responseTimeout": 60}
        bundle.writestr("model-config.yaml", yaml.safe_dump(config))
        bundle.writestr("manifest.json", json.dumps(manifest))
        for name, data in weights.items():
            bundle.writestr(name, data)
    return path


@pytest.fixture
def make_mar():
    return write_mar
