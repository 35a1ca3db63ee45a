"""Export the store as the layout KServe (and the plain Kubernetes Deployment) mount at
/mnt/models: config/config.properties + model-store/*.mar, the config's model_snapshot naming
the archives and their worker and batch settings, so TorchServe starts them with no --models
argument. deploy/k8s/ holds the manifests that serve this layout.

In the cluster TorchServe's own token authorization is off by default: it generates random
keys per process, which clients cannot share across replicas behind one Service. Access
control moves to the platform (deploy/k8s/networkpolicy.yaml, and the mesh or gateway in front
of KServe); the management API listens on the pod's loopback only and stays closed
(enable_model_api=false). `--token-auth` keeps TorchServe's tokens for single-replica setups.
"""

import json
import os
import shutil
import sys
import zipfile
from pathlib import Path
from typing import NamedTuple, Optional

import yaml

from archiver.versions import archive_identity
from operations.server import Keys, Ports, TorchServe, latest_archives, read_keys, render_config
from weightstore.layout import REPO_ROOT

MOUNT = "/mnt/models"  # where KServe's storage initializer puts storageUri's content
CONFIG_PATH = "config/config.properties"
MODEL_STORE = "model-store"
SNAPSHOT_KEYS = {  # snapshot field <- model-config.yaml field, with TorchServe's defaults
    "minWorkers": ("minWorkers", 1),
    "maxWorkers": ("maxWorkers", 1),
    "batchSize": ("batchSize", 1),
    "maxBatchDelay": ("maxBatchDelay", 100),
    "responseTimeout": ("responseTimeout", 120),
}
CLUSTER_SETTINGS = {
    "inference_address": "http://0.0.0.0:8080",
    "management_address": "http://127.0.0.1:8081",
    "metrics_address": "http://0.0.0.0:8082",
    "grpc_inference_address": "0.0.0.0",
    "grpc_management_address": "127.0.0.1",
    "enable_model_api": "false",
    "enable_metrics_api": "true",
    "model_store": f"{MOUNT}/{MODEL_STORE}",
}
EXPORT_HEADER = (
    "# Written by `python -m archiver export-kserve` for a pod (deploy/k8s/README.md): the\n"
    "# repository's config with cluster addresses, the model store under /mnt/models, a\n"
    "# model_snapshot, and TorchServe's token authorization replaced by the NetworkPolicy.\n"
)


class KServeExport(NamedTuple):
    root: Path
    config: Path
    model_store: Path
    models: dict  # model -> archive file name


def model_snapshot(store: Path, archives: dict) -> dict:
    """TorchServe's startup snapshot for {model: archive}: one default version per model."""
    models = {}
    for model, archive in archives.items():
        path = Path(store) / archive
        identity = archive_identity(path)
        if identity.model != model:
            raise ValueError(f"{archive} holds model {identity.model!r}, not {model!r}")
        with zipfile.ZipFile(path) as bundle:
            has_config = "model-config.yaml" in bundle.namelist()
            config = yaml.safe_load(bundle.read("model-config.yaml")) if has_config else {}
        entry = {"defaultVersion": True, "marName": archive}
        entry.update({key: config.get(source, default) for key, (source, default) in SNAPSHOT_KEYS.items()})
        models[model] = {identity.version: entry}
    return {"name": "startup.cfg", "modelCount": len(models), "models": models}


def export_kserve(
    store: Path,
    out: Path,
    models: Optional[dict] = None,
    token_auth: bool = False,
    base_config: Path = REPO_ROOT / "config.properties",
) -> KServeExport:
    """Copy {model: archive} (default: each model's newest archive) into out/model-store and
    write out/config/config.properties. Rebuilt from scratch: out/ holds only this export."""
    store, out = Path(store), Path(out)
    models = models if models is not None else latest_archives(store)
    if not models:
        raise ValueError(f"no archives in {store} to export; run `python -m archiver build`")
    staged = out.with_name(out.name + ".part")
    shutil.rmtree(staged, ignore_errors=True)
    (staged / MODEL_STORE).mkdir(parents=True)
    for archive in models.values():
        _link_or_copy(store / archive, staged / MODEL_STORE / archive)
    settings = {**CLUSTER_SETTINGS, "model_snapshot": json.dumps(model_snapshot(store, models))}
    if not token_auth:
        settings["disable_token_authorization"] = "true"
    config = staged / CONFIG_PATH
    config.parent.mkdir(parents=True)
    config.write_text(EXPORT_HEADER + render_config(base_config, Ports(), settings))
    if out.exists():
        shutil.rmtree(out)
    os.replace(staged, out)
    return KServeExport(out, out / CONFIG_PATH, out / MODEL_STORE, dict(models))


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)  # archives are never edited in place, so sharing bytes is safe
    except OSError:
        shutil.copy2(source, target)


def snapshot_models(config: Path) -> dict:
    """{model: default version} from a config.properties' model_snapshot."""
    for line in Path(config).read_text().splitlines():
        if line.startswith("model_snapshot="):
            snapshot = json.loads(line.split("=", 1)[1])
            return {
                m: next(v for v, e in versions.items() if e.get("defaultVersion"))
                for m, versions in snapshot["models"].items()
            }
    raise ValueError(f"{config} has no model_snapshot")


class ExportedTorchServe(TorchServe):
    """A local TorchServe on an exported layout, as the cluster runs it (models from the
    config's model_snapshot, no --models), rebound to loopback ports: to check an export."""

    def __init__(self, workdir: Path, export: Path, ports: Ports = Ports()):
        export = Path(export)
        config = export / CONFIG_PATH
        super().__init__(
            workdir,
            export / MODEL_STORE,
            snapshot_models(config),
            ports,
            config=config,
            overrides={"model_store": str((export / MODEL_STORE).resolve()), "grpc_inference_address": "127.0.0.1"},
        )

    def command(self) -> list:
        return [
            str(Path(sys.executable).parent / "torchserve"),
            "--start",
            "--foreground",
            "--ncs",
            "--ts-config",
            str(self.workdir / "config.properties"),
        ]

    def keys(self) -> Keys:
        """Empty keys when the export turned token authorization off (no key_file.json)."""
        if (self.workdir / "key_file.json").is_file():
            return read_keys(self.workdir)
        return Keys("", "")
