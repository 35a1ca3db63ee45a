import json

import pytest

from operations.kserve import CONFIG_PATH, MODEL_STORE, MOUNT, export_kserve, model_snapshot, snapshot_models


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
    assert sorted(p.name for p in export.root.iterdir()) == ["config", "model-store"]
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
