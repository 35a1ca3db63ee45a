import hashlib
import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
import yaml

from operations.kserve import (
    CONFIG_PATH,
    MODEL_STORE,
    MOUNT,
    SUMS_FILE,
    export_kserve,
    model_snapshot,
    snapshot_models,
)

VERIFY_CONFIG_MAP = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "export-verify.yaml"


def properties(path) -> dict:
    return dict(
        line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#")
    )


@pytest.fixture
def store(tmp_path, make_mar):
    store = tmp_path / "store"
    store.mkdir()
    make_mar(store / "fast_style-1.0.mar", "fast_style", "1.0")
    make_mar(
        store / "fast_style-2.0.mar",
        "fast_style",
        "2.0",
        config={"minWorkers": 2, "maxWorkers": 3, "batchSize": 4, "maxBatchDelay": 50, "responseTimeout": 90},
    )
    make_mar(store / "txt2img-1.0.mar", "txt2img", "1.0", config={"batchSize": 2})
    return store


def test_export_writes_the_layout_with_the_newest_archives(store, tmp_path):
    export = export_kserve(store, tmp_path / "kserve")

    assert export.config == tmp_path / "kserve" / CONFIG_PATH
    assert sorted(p.name for p in export.model_store.iterdir()) == ["fast_style-2.0.mar", "txt2img-1.0.mar"]
    assert sorted(p.name for p in export.root.iterdir()) == ["SHA256SUMS", "config", "model-store"]
    assert (export.model_store / "fast_style-2.0.mar").read_bytes() == (store / "fast_style-2.0.mar").read_bytes()


def test_the_config_snapshot_lists_the_models_with_their_archive_settings(store, tmp_path):
    config = properties(export_kserve(store, tmp_path / "kserve").config)

    snapshot = json.loads(config["model_snapshot"])
    assert snapshot["modelCount"] == 2
    assert snapshot["models"]["fast_style"] == {
        "2.0": {
            "defaultVersion": True,
            "marName": "fast_style-2.0.mar",
            "minWorkers": 2,
            "maxWorkers": 3,
            "batchSize": 4,
            "maxBatchDelay": 50,
            "responseTimeout": 90,
        }
    }
    txt2img = snapshot["models"]["txt2img"]["1.0"]
    assert (txt2img["batchSize"], txt2img["minWorkers"], txt2img["responseTimeout"]) == (2, 1, 120)


def test_the_config_is_the_cluster_one(store, tmp_path):
    config = properties(export_kserve(store, tmp_path / "kserve").config)

    assert config["model_store"] == f"{MOUNT}/{MODEL_STORE}"
    assert config["inference_address"] == "http://0.0.0.0:8080"
    assert config["metrics_address"] == "http://0.0.0.0:8082"
    assert config["management_address"].startswith("http://127.0.0.1:")
    assert config["enable_model_api"] == "false"
    assert config["disable_token_authorization"] == "true"
    assert config["metrics_mode"] == "prometheus"
    assert config["allowed_urls"] == "^file:///nonexistent$"  # the repository's settings carry over


def test_token_auth_can_be_kept(store, tmp_path):
    config = properties(export_kserve(store, tmp_path / "kserve", token_auth=True).config)
    assert "disable_token_authorization" not in config


def test_chosen_models_and_a_re_export_replaces_the_old_one(store, tmp_path):
    export_kserve(store, tmp_path / "kserve")
    export = export_kserve(store, tmp_path / "kserve", models={"fast_style": "fast_style-1.0.mar"})
    assert [p.name for p in export.model_store.iterdir()] == ["fast_style-1.0.mar"]
    assert snapshot_models(export.config) == {"fast_style": "1.0"}
    assert not (tmp_path / "kserve.part").exists()


def test_an_archive_under_the_wrong_name_or_an_empty_store_is_refused(store, tmp_path):
    with pytest.raises(ValueError, match="holds model 'txt2img'"):
        model_snapshot(store, {"animals": "txt2img-1.0.mar"})
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no archives"):
        export_kserve(tmp_path / "empty", tmp_path / "out")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_sha256sums_lists_every_exported_file_and_its_digest_is_returned(store, tmp_path):
    export = export_kserve(store, tmp_path / "kserve")

    text = (export.root / SUMS_FILE).read_text()
    assert export.sums_sha256 == sha(text.encode())
    listed = dict(reversed(line.split("  ", 1)) for line in text.splitlines())
    on_disk = {p.relative_to(export.root).as_posix() for p in export.root.rglob("*") if p.is_file()}
    assert set(listed) == on_disk - {SUMS_FILE}
    for path, digest in listed.items():
        assert sha((export.root / path).read_bytes()) == digest


# -- the base model the diffusion archives reference (issue 14) ----------------------------------


@pytest.fixture
def base_folder(tmp_path):
    base = tmp_path / "weights" / "sd15"
    files = {"model_index.json": b'{"_class_name": "StableDiffusionPipeline"}', "unet/weights.safetensors": b"u" * 99}
    for name, data in files.items():
        (base / name).parent.mkdir(parents=True, exist_ok=True)
        (base / name).write_bytes(data)
    return base, files


def diffusion_store(tmp_path, make_mar, base, files) -> Path:
    store = tmp_path / "diffusion-store"
    store.mkdir()
    entries = [{"path": n, "sha256": sha(d), "bytes": len(d)} for n, d in files.items()]
    make_mar(
        store / "txt2img-1.0.mar",
        "txt2img",
        "1.0",
        weights={"lora/monet.safetensors": b"monet"},
        config={"batchSize": 4, "handler": {"base_model": str(base), "adapters": {"monet": "lora/monet.safetensors"}}},
        manifest_overrides={
            "base_model": {"path": str(base), "embedded": False, "identity": "ab" * 32, "files": entries}
        },
    )
    return store


def test_the_base_model_travels_with_the_export_and_the_pods_archive_points_at_it(tmp_path, make_mar, base_folder):
    base, files = base_folder
    store = diffusion_store(tmp_path, make_mar, base, files)

    export = export_kserve(store, tmp_path / "kserve")

    (folder,) = export.base_models.values()
    assert folder == f"base-models/sd15-{'ab' * 6}"  # named by the base model's identity
    for name, data in files.items():
        assert (export.root / folder / name).read_bytes() == data
    with zipfile.ZipFile(export.model_store / "txt2img-1.0.mar") as bundle:
        handler = yaml.safe_load(bundle.read("model-config.yaml"))["handler"]
        assert bundle.read("lora/monet.safetensors") == b"monet"
    assert handler["base_model"] == f"{MOUNT}/{folder}"  # not the build machine's path
    assert handler["adapters"] == {"monet": "lora/monet.safetensors"}
    sums = (export.root / SUMS_FILE).read_text()
    assert f"{folder}/unet/weights.safetensors" in sums


def test_a_base_model_changed_since_the_build_is_refused_naming_the_file(tmp_path, make_mar, base_folder):
    base, files = base_folder
    store = diffusion_store(tmp_path, make_mar, base, files)
    (base / "unet" / "weights.safetensors").write_bytes(b"other weights")

    with pytest.raises(ValueError, match=r"unet/weights.safetensors differs from the sha256"):
        export_kserve(store, tmp_path / "kserve")
    assert not (tmp_path / "kserve").exists()


def test_a_missing_base_model_is_refused(tmp_path, make_mar, base_folder):
    base, files = base_folder
    store = diffusion_store(tmp_path, make_mar, base, files)
    shutil.rmtree(base)
    with pytest.raises(ValueError, match="not a diffusers folder"):
        export_kserve(store, tmp_path / "kserve")


# -- the pod's check of the export (deploy/k8s/export-verify.yaml), run here with bash -----------


def run_verify(root: Path, pinned: str, *command) -> subprocess.CompletedProcess:
    script = yaml.safe_load(VERIFY_CONFIG_MAP.read_text())["data"]["verify.sh"]
    path = root.parent / "verify.sh"
    path.write_text(script)
    env = {**os.environ, "IMAGELAB_EXPORT_SUMS_SHA256": pinned}
    return subprocess.run(["bash", str(path), str(root), *command], env=env, capture_output=True, text=True)


def test_the_pod_check_passes_an_intact_export_and_runs_the_server(store, tmp_path):
    export = export_kserve(store, tmp_path / "kserve")
    done = run_verify(export.root, export.sums_sha256, "echo", "torchserve started")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "torchserve started"


@pytest.mark.parametrize("tamper", ["archive", "sums", "extra file", "pinned"])
def test_the_pod_check_stops_a_tampered_export(store, tmp_path, tamper):
    export = export_kserve(store, tmp_path / "kserve")
    pinned = export.sums_sha256
    if tamper == "archive":
        (export.model_store / "txt2img-1.0.mar").write_bytes(b"replaced")
    elif tamper == "sums":  # an attacker rewrites SHA256SUMS to match a replaced archive
        (export.model_store / "txt2img-1.0.mar").write_bytes(b"replaced")
        (export.root / SUMS_FILE).write_text(
            "".join(
                f"{sha(p.read_bytes())}  {p.relative_to(export.root).as_posix()}\n"
                for p in sorted(export.root.rglob("*"))
                if p.is_file() and p.name != SUMS_FILE
            )
        )
    elif tamper == "extra file":
        (export.model_store / "evil-9.0.mar").write_bytes(b"unlisted")
    else:
        pinned = "0" * 64

    done = run_verify(export.root, pinned, "echo", "torchserve started")

    assert done.returncode != 0
    assert "torchserve started" not in done.stdout
    assert "verify:" in done.stderr


def test_an_archive_with_an_embedded_base_model_is_exported_as_is(store, tmp_path, make_mar):
    make_mar(
        store / "animals-1.0.mar",
        "animals",
        "1.0",
        manifest_overrides={"base_model": {"path": "sd15", "embedded": True, "identity": "cd" * 32, "files": []}},
    )
    export = export_kserve(store, tmp_path / "kserve")
    assert export.base_models == {}
    assert (export.model_store / "animals-1.0.mar").read_bytes() == (store / "animals-1.0.mar").read_bytes()
