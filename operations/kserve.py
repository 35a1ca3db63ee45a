"""Export the store as the layout KServe (and the plain Kubernetes Deployment) mount at
/mnt/models: config/config.properties + model-store/*.mar, the config's model_snapshot naming
the archives and their worker and batch settings, so TorchServe starts them with no --models
argument; base-models/ with the shared base folders the diffusion archives reference (in the
pod's archive copies, model-config.yaml points there instead of at the build machine's path);
SHA256SUMS over every file, which the pod checks before TorchServe starts
(deploy/k8s/export-verify.yaml). deploy/k8s/ holds the manifests that serve this layout.

In the cluster TorchServe's own token authorization is off by default: it generates random
keys per process, which clients cannot share across replicas behind one Service. Access
control moves to the platform (deploy/k8s/networkpolicy.yaml, kserve/networkpolicy.yaml and
kserve/auth.yaml: default-deny policies and Istio JWT authentication); the management API
listens on the pod's loopback only and stays closed (enable_model_api=false). `--token-auth`
keeps TorchServe's tokens for single-replica setups.
"""

import hashlib
import json
import logging
import os
import shutil
import sys
import zipfile
from pathlib import Path
from typing import NamedTuple, Optional

import yaml

from archiver.versions import archive_identity
from imagelab.weights_io import sha256_of
from operations.server import Keys, Ports, TorchServe, archive_manifest, latest_archives, read_keys, render_config
from repo_paths import REPO_ROOT

logger = logging.getLogger(__name__)

MOUNT = "/mnt/models"  # where KServe's storage initializer puts storageUri's content
CONFIG_PATH = "config/config.properties"
MODEL_STORE = "model-store"
BASE_MODELS = "base-models"
SUMS_FILE = "SHA256SUMS"  # `sha256sum --check` format: "<hex>  <path relative to the root>"
BASE_MODEL_KEY = "base_model"  # manifest.json: {path, embedded, identity, files: [{path, sha256}]}
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
    "# Written by `python -m operations export-kserve` for a pod (deploy/k8s/README.md): the\n"
    "# repository's config with cluster addresses, the model store under /mnt/models, a\n"
    "# model_snapshot, and TorchServe's token authorization replaced by the NetworkPolicy.\n"
)


class KServeExport(NamedTuple):
    root: Path
    config: Path
    model_store: Path
    models: dict  # model -> archive file name
    sums_sha256: str  # digest of SHA256SUMS: the value the pod's check is pinned to
    base_models: dict  # build machine's base folder -> its folder in the export


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
    bases = {}
    for archive in models.values():
        base = shared_base_model(archive_manifest(store / archive))
        if base is None:
            _link_or_copy(store / archive, staged / MODEL_STORE / archive)
            continue
        if base not in bases:
            bases[base] = export_base_model(store / archive, staged)
        repoint_base_model(store / archive, staged / MODEL_STORE / archive, f"{MOUNT}/{bases[base]}")
    settings = {**CLUSTER_SETTINGS, "model_snapshot": json.dumps(model_snapshot(store, models))}
    if not token_auth:
        settings["disable_token_authorization"] = "true"
    config = staged / CONFIG_PATH
    config.parent.mkdir(parents=True)
    config.write_text(EXPORT_HEADER + render_config(base_config, Ports(), settings))
    sums = write_sums(staged)
    if out.exists():
        shutil.rmtree(out)
    os.replace(staged, out)
    return KServeExport(out, out / CONFIG_PATH, out / MODEL_STORE, dict(models), sums, bases)


def shared_base_model(manifest: dict) -> Optional[str]:
    """The build machine's path of the base folder an archive references, None when it has
    none or embeds it. The manifest's `base_model` is a record (path, embedded, identity,
    files: archiver/capabilities.py), or a bare path in archives built before the hashes."""
    record = manifest.get(BASE_MODEL_KEY)
    if isinstance(record, dict):
        return None if record.get("embedded") else record["path"]
    return record or None


def export_base_model(archive: Path, root: Path) -> str:
    """Copy the base folder an archive references into root/base-models/, checked file by
    file against the sha256s its manifest recorded at build time. -> its path under root."""
    record = archive_manifest(archive)[BASE_MODEL_KEY]
    record = record if isinstance(record, dict) else {"path": record}
    source = Path(record["path"])
    if not (source / "model_index.json").is_file():
        raise ValueError(f"{archive.name} references the base model {source}, which is not a diffusers folder here")
    recorded = {entry["path"]: entry["sha256"] for entry in record.get("files") or []}
    if recorded:
        names = sorted(recorded)  # exactly what the build hashed
        missing = [n for n in names if not (source / n).is_file()]
        if missing:
            raise ValueError(f"{archive.name}: base model {source} lacks {', '.join(missing[:5])}")
        relative = f"{BASE_MODELS}/{source.name}-{record.get('identity', 'unknown')[:12]}"
    else:
        logger.warning("%s records no sha256 of its base model's files; %s goes out unchecked", archive.name, source)
        names = sorted(p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file())
        relative = f"{BASE_MODELS}/{source.name}-unhashed"
    for name in names:
        target = root / relative / name
        target.parent.mkdir(parents=True, exist_ok=True)
        _link_or_copy(source / name, target)
        if name in recorded and sha256_of(target) != recorded[name]:
            raise ValueError(
                f"{archive.name}: base model file {source / name} differs from the sha256 its manifest "
                f"recorded ({recorded[name][:16]}...); rebuild the archive or restore the file"
            )
    return relative


def repoint_base_model(source: Path, target: Path, base_in_pod: str) -> None:
    """A copy of the archive whose model-config.yaml names the base folder where the pod has
    it; every other member (handler, weights, manifest) is copied byte for byte."""
    with zipfile.ZipFile(source) as bundle, zipfile.ZipFile(target, "w") as copy:
        for info in bundle.infolist():
            data = bundle.read(info)
            if info.filename == "model-config.yaml":
                config = yaml.safe_load(data)
                config.setdefault("handler", {})["base_model"] = base_in_pod
                data = yaml.safe_dump(config, sort_keys=False).encode()
            copy.writestr(info, data, compress_type=info.compress_type)


def write_sums(root: Path) -> str:
    """root/SHA256SUMS over every other file below root. -> the sha256 of SHA256SUMS."""
    lines = [
        f"{sha256_of(path)}  {path.relative_to(root).as_posix()}"
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.relative_to(root).as_posix() != SUMS_FILE
    ]
    text = "\n".join(lines) + "\n"
    (root / SUMS_FILE).write_text(text)
    return hashlib.sha256(text.encode()).hexdigest()


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
