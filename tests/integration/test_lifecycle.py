"""The archive lifecycle against its own TorchServe (model API open, as `serve --allow-deploy`
runs it): deploy a new fast_style version, roll back, refuse broken versions, prune; builds
that fail leave the store alone; the KServe export serves."""

import io
import json
import shutil
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
import requests
import yaml
from PIL import Image

import archiver.build
from archiver.build import build_archive
from archiver.capabilities import CAPABILITIES, ArchivePlan, WeightFile
from archiver.versions import verify_archive
from handlers.services.settings import FastStyleSettings
from imagelab.fast_style.weights import synthesize_transformer_net
from operations.deploy import DeployError, Endpoint, ManagementClient, deploy, prune, rollback
from operations.kserve import ExportedTorchServe, export_kserve
from operations.server import Ports, TorchServe
from operations.smoke import gradient_png
from weightstore.layout import WeightsLayout

FAST_STYLE = CAPABILITIES["fast_style"]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """fast_style 1.0 from the usual weights; 2.0 whose candy is synthesised with another seed,
    so the two versions answer the same request differently."""
    store = tmp_path_factory.mktemp("lifecycle_store")
    build_archive(FAST_STYLE, WeightsLayout.default(), store, "1.0")
    other = tmp_path_factory.mktemp("weights_v2")
    synthesize_transformer_net(other / "fast_style" / "candy.safetensors", "candy", seed=1)
    # The other styles come from the default layout's tiny twins, so only candy differs.
    shutil.copytree(WeightsLayout.default().tiny_root, other / ".tiny")
    build_archive(FAST_STYLE, WeightsLayout(other), store, "2.0")
    return store


@pytest.fixture(scope="module")
def endpoint(store, tmp_path_factory) -> Endpoint:
    workdir = tmp_path_factory.mktemp("lifecycle_server")
    server = TorchServe(
        workdir, store, {"fast_style": "fast_style-1.0.mar"}, Ports.free(), overrides={"enable_model_api": "true"}
    )
    server.start()
    try:
        server.wait_ready(timeout_s=300)
        yield Endpoint.from_workdir(workdir)
    finally:
        server.stop()


def candy(endpoint: Endpoint, path: str = "/predictions/fast_style") -> bytes:
    answer = requests.post(
        f"{endpoint.inference_url}{path}",
        headers=endpoint.headers("inference"),
        files={"image": ("photo.png", gradient_png(48))},
        data={"style": "candy"},
        timeout=120,
    )
    assert answer.status_code == 200, answer.text
    Image.open(io.BytesIO(answer.content)).load()
    return answer.content


def test_deploy_switches_the_default_and_rollback_restores_it(endpoint, store):
    client = ManagementClient(endpoint)
    v1 = candy(endpoint)

    result = deploy(endpoint, store / "fast_style-2.0.mar", workers=1)

    assert (result.version, result.previous_default, result.smoke.ok) == ("2.0", "1.0", True)
    v2 = candy(endpoint, "/predictions/fast_style/2.0")
    assert v2 != v1
    assert candy(endpoint, "/predictions/fast_style/1.0") == v1
    assert client.default_version("fast_style") == "2.0"
    assert candy(endpoint) == v2

    back = rollback(endpoint, "fast_style")

    assert (back.from_version, back.to_version) == ("2.0", "1.0")
    assert candy(endpoint) == v1

    rollback(endpoint, "fast_style", to="2.0")
    assert prune(endpoint, "fast_style", keep=1) == ["1.0"]
    assert client.registered_versions("fast_style") == ["2.0"]
    assert candy(endpoint) == v2


def test_deploying_a_registered_version_is_refused(endpoint, store):
    default = ManagementClient(endpoint).default_version("fast_style")
    with pytest.raises(DeployError, match="already registered"):
        deploy(endpoint, store / f"fast_style-{default}.mar")


def _assert_nothing_changed(endpoint, default_before, answer_before, failed_version):
    client = ManagementClient(endpoint)
    assert client.default_version("fast_style") == default_before
    assert failed_version not in client.registered_versions("fast_style")
    assert candy(endpoint) == answer_before


def test_an_archive_that_cannot_load_leaves_the_default_serving(endpoint, store, tmp_path):
    default, answer = ManagementClient(endpoint).default_version("fast_style"), candy(endpoint)
    broken = tmp_path / "weights"
    (broken / "fast_style").mkdir(parents=True)
    (broken / "fast_style" / "candy.safetensors").write_bytes(b"not a safetensors file" * 8)
    shutil.copytree(WeightsLayout.default().tiny_root, broken / ".tiny")
    build_archive(FAST_STYLE, WeightsLayout(broken), store, "7.0")

    with pytest.raises(DeployError, match="7.0"):
        deploy(endpoint, store / "fast_style-7.0.mar")

    _assert_nothing_changed(endpoint, default, answer, "7.0")


def test_a_failing_smoke_test_leaves_the_default_serving(endpoint, store, tmp_path):
    """The archive loads, but its limits reject the 64 px smoke request: registered, smoke
    test fails, withdrawn."""
    default, answer = ManagementClient(endpoint).default_version("fast_style"), candy(endpoint)
    config = yaml.safe_load(FAST_STYLE.config.read_text())
    config["handler"].update(max_side_px=32, default_max_side_px=32)
    config_path = tmp_path / "fast_style.yaml"
    config_path.write_text(yaml.safe_dump(config))
    small = replace(FAST_STYLE, config=config_path)
    build_archive(small, WeightsLayout.default(), store, "8.0")

    with pytest.raises(DeployError, match=r"smoke test of fast_style 8.0 failed \(400\).*max_side_px"):
        deploy(endpoint, store / "fast_style-8.0.mar")

    _assert_nothing_changed(endpoint, default, answer, "8.0")


def test_manifest_hashes_match_the_archive_and_a_tampered_one_is_refused(endpoint, store, tmp_path):
    assert verify_archive(store / "fast_style-1.0.mar") == []
    tampered = tmp_path / "fast_style-9.0.mar"
    with zipfile.ZipFile(store / "fast_style-1.0.mar") as source, zipfile.ZipFile(tampered, "w") as out:
        for item in source.infolist():
            data = source.read(item)
            out.writestr(item, data[:-1] + b"\0" if item.filename == "weights/mosaic.safetensors" else data)
    assert verify_archive(tampered) == ["weights/mosaic.safetensors"]
    with pytest.raises(DeployError, match="weights/mosaic.safetensors"):
        deploy(endpoint, tampered)


def _store_listing(store: Path) -> dict:
    return {p.name: p.stat().st_mtime_ns for p in store.iterdir()}


def test_a_missing_weight_fails_the_build_naming_the_file(store, tmp_path):
    missing = tmp_path / "gone" / "candy.safetensors"
    capability = replace(
        FAST_STYLE,
        plan=lambda layout, defaults: ArchivePlan(
            [WeightFile(missing, "weights/candy.safetensors", False)],
            FastStyleSettings.from_config({**defaults, "styles": {"candy": "weights/candy.safetensors"}}),
        ),
    )
    before = _store_listing(store)
    with pytest.raises(FileNotFoundError, match=str(missing)):
        build_archive(capability, WeightsLayout.default(), store, "5.0")
    assert _store_listing(store) == before


def test_an_interrupted_build_leaves_the_store_unchanged(store, monkeypatch):
    def interrupted(config):
        (Path(config.export_path) / "fast_style.mar").write_bytes(b"half an archive")
        raise KeyboardInterrupt

    monkeypatch.setattr(archiver.build, "generate_model_archive", interrupted)
    before = _store_listing(store)
    with pytest.raises(KeyboardInterrupt):
        build_archive(FAST_STYLE, WeightsLayout.default(), store, "6.0")
    assert _store_listing(store) == before


def test_the_kserve_export_serves(store, tmp_path):
    export = export_kserve(store, tmp_path / "kserve", models={"fast_style": "fast_style-1.0.mar"})
    server = ExportedTorchServe(tmp_path / "workdir", export.root, Ports.free())
    server.start()
    try:
        server.wait_ready(timeout_s=300)
        # Token authorization is off in the export: no key_file.json, no Authorization header.
        assert not (tmp_path / "workdir" / "key_file.json").exists()
        answer = requests.post(
            f"{server.inference_url}/predictions/fast_style",
            files={"image": ("photo.png", gradient_png(48))},
            timeout=120,
        )
        assert answer.status_code == 200, answer.text
        assert Image.open(io.BytesIO(answer.content)).size == (48, 48)
        metrics = requests.get(f"http://127.0.0.1:{server.ports.metrics}/metrics", timeout=30).text
        # The two series the HPA's adapter rule divides (deploy/k8s/monitoring.yaml).
        assert "ts_queue_latency_microseconds{" in metrics
        assert "ts_inference_requests_total{" in metrics
        management = requests.post(f"{server.management_url}/models", params={"url": "x.mar"}, timeout=30)
        assert management.status_code == 405  # the model API stays closed in the cluster
    finally:
        server.stop()


def test_rollback_to_a_version_built_on_another_base_model_is_refused(endpoint, store, tmp_path):
    """animals 1.0 and 2.0 reference a shared SD folder (the tiny one, placed where a real one
    lives) that changed between the two builds: rolling back to 1.0 would serve weights its
    manifest does not name, so it is refused by file and 2.0 stays the default."""
    weights = tmp_path / "weights"
    tiny = WeightsLayout.default().tiny_root
    shutil.copytree(tiny / "sd15", weights / "sd15")
    shutil.copytree(tiny / "lora", weights / ".tiny" / "lora")  # same base bytes: reused, not remade
    animals = CAPABILITIES["animals"]
    client = ManagementClient(endpoint)
    build_archive(animals, WeightsLayout(weights), store, "1.0")
    try:
        deploy(endpoint, store / "animals-1.0.mar")
        scheduler = weights / "sd15" / "scheduler" / "scheduler_config.json"
        scheduler.write_text(scheduler.read_text().replace("{", '{\n  "_note": "a newer download",', 1))
        build_archive(animals, WeightsLayout(weights), store, "2.0")
        deploy(endpoint, store / "animals-2.0.mar")
        identities = [
            json.loads(zipfile.ZipFile(store / f"animals-{v}.mar").read("manifest.json"))["base_model"]["identity"]
            for v in ("1.0", "2.0")
        ]
        assert identities[0] != identities[1]

        with pytest.raises(DeployError, match=r"animals-1.0.mar was built against base model .*scheduler_config.json"):
            rollback(endpoint, "animals", store=store)
        assert client.default_version("animals") == "2.0"
    finally:
        for version in client.registered_versions("animals"):
            if version != client.default_version("animals"):
                client.unregister("animals", version)
        client.unregister("animals")
