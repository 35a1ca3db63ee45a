"""The base model an archive was built against, checked where it matters: when a worker starts
(an error naming the file, or a warning when the operator opts out), before a deploy and before
a rollback; file hashes are cached by (path, size, mtime)."""

import logging
import os

import pytest

import imagelab.file_hashes as file_hashes
from handlers.services.base_model_check import BaseModelMismatch, check_base_model
from imagelab.file_hashes import HashCache, folder_identity, hash_folder
from operations.deploy import DeployError, check_base_model_of


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(file_hashes.CACHE_ENV, str(tmp_path / "cache"))


@pytest.fixture
def base(tmp_path):
    folder = tmp_path / "sd15"
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    (folder / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"unet weights" * 100)
    return folder


def manifest_for(folder, **record) -> dict:
    files = hash_folder(folder)
    entry = {"path": str(folder), "embedded": False, "identity": folder_identity(files)}
    entry["files"] = [f._asdict() for f in files]
    return {"model": "txt2img", "version": "3.0", "base_model": {**entry, **record}}


def test_an_unchanged_base_passes_and_a_changed_file_is_named(base):
    manifest = manifest_for(base)
    check_base_model(manifest, base)
    (base / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"other weights" * 100)
    with pytest.raises(BaseModelMismatch, match=r"txt2img 3.0: .*unet/diffusion_pytorch_model.safetensors: sha256"):
        check_base_model(manifest, base)
    (base / "model_index.json").unlink()
    with pytest.raises(BaseModelMismatch, match=r"model_index.json: missing"):
        check_base_model(manifest, base)


def test_the_operator_opt_out_logs_a_warning_instead(base, caplog):
    manifest = manifest_for(base)
    (base / "model_index.json").write_text("{}")
    with caplog.at_level(logging.WARNING):
        check_base_model(manifest, base, strict=False)
    assert "model_index.json" in caplog.text and "verify_base_model: false" in caplog.text


def test_embedded_and_unrecorded_bases_are_not_checked_here(base):
    check_base_model({"base_model": {"embedded": True, "files": [{"path": "x", "sha256": "0"}]}}, base)
    check_base_model({}, base)
    check_base_model({"base_model": "/old/style/string"}, base)


def test_hashes_are_cached_by_path_size_and_mtime(base, monkeypatch):
    first = hash_folder(base)
    calls = []
    monkeypatch.setattr(file_hashes, "sha256_of", lambda path: calls.append(path) or "x" * 64)
    assert hash_folder(base) == first and calls == []
    index = base / "model_index.json"
    stat = index.stat()
    os.utime(index, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert [f.sha256 for f in hash_folder(base)] == ["x" * 64, first[1].sha256]
    assert calls == [index.resolve()]


def test_a_cache_that_cannot_be_written_costs_only_the_hashing(base, tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    cache = HashCache(blocked / "sha256.json")
    assert cache.sha256(base / "model_index.json")
    cache.save()  # no error


def test_deploy_and_rollback_refuse_an_archive_whose_base_changed(base, tmp_path, make_mar):
    manifest = manifest_for(base)
    mar = make_mar(
        tmp_path / "txt2img-3.0.mar", "txt2img", "3.0", manifest_overrides={"base_model": manifest["base_model"]}
    )
    check_base_model_of(mar)
    (base / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"a newer download")
    with pytest.raises(
        DeployError, match=r"txt2img-3.0.mar was built against base model .*unet/diffusion_pytorch_model"
    ):
        check_base_model_of(mar)


def test_a_diffusion_worker_refuses_to_start_on_a_changed_base(base, tmp_path):
    """The check runs first in the service's setup, before any weight is loaded."""
    import json

    from handlers.common.service import ServiceContext
    from handlers.services.txt2img import Txt2ImgService

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "manifest.json").write_text(json.dumps(manifest_for(base)))
    (base / "model_index.json").write_text("{}")
    context = ServiceContext("txt2img", "3.0", model_dir, {"base_model": str(base)}, "cpu")
    with pytest.raises(BaseModelMismatch, match="model_index.json"):
        Txt2ImgService().setup(context)
