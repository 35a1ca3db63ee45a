"""Each capability's plan, from a tiny weights root of its own: the typed settings its service
reads, written into model-config.yaml and read back unchanged; keys or handlers that would only
fail in a worker fail the build instead."""

from dataclasses import replace

import pytest
import yaml

from archiver.build import build_archive
from archiver.capabilities import CAPABILITIES
from handlers.services.settings import DiffusionServiceSettings, FastStyleSettings, NeuralStyleSettings
from imagelab.file_hashes import folder_identity, hash_folder
from repo_paths import REPO_ROOT
from weightstore.layout import WeightsLayout


@pytest.fixture(scope="module")
def tiny_layout(tmp_path_factory) -> WeightsLayout:
    """An empty weights root: every weight is a stand-in synthesised into its .tiny/."""
    return WeightsLayout(tmp_path_factory.mktemp("weights"))


def archived_settings(capability, plan):
    """What a worker reads: the YAML text of the archive's model-config, parsed back."""
    written = yaml.safe_load(yaml.safe_dump(capability.handler_config(plan), sort_keys=False))
    return capability.settings_class.from_config(written["handler"])


@pytest.mark.parametrize("name", sorted(CAPABILITIES))
def test_the_plan_settings_survive_the_archive_config(tiny_layout, name):
    capability = CAPABILITIES[name]
    plan = capability.build_plan(tiny_layout)
    assert type(plan.settings) is capability.settings_class
    assert archived_settings(capability, plan) == plan.settings
    # The YAML's handler defaults are the base the plan built on.
    defaults = capability.read_config()["handler"]
    config = capability.handler_config(plan)["handler"]
    assert {k: config[k] for k in defaults if k != "dtype"} == {k: v for k, v in defaults.items() if k != "dtype"}


def test_fast_style_plan(tiny_layout):
    settings = CAPABILITIES["fast_style"].build_plan(tiny_layout).settings
    assert isinstance(settings, FastStyleSettings)
    assert settings.styles == {s: f"weights/{s}.safetensors" for s in ("candy", "mosaic", "udnie", "rain_princess")}
    assert settings.synthetic_styles == ("candy", "mosaic", "udnie", "rain_princess")  # a tuple again


def test_neural_style_plan(tiny_layout):
    plan = CAPABILITIES["neural_style"].build_plan(tiny_layout)
    assert plan.settings == NeuralStyleSettings.from_config(
        {
            **CAPABILITIES["neural_style"].read_config()["handler"],
            "vgg_weights": "weights/vgg19.safetensors",
            "synthetic": True,
        }
    )
    assert plan.weights[0].source == tiny_layout.tiny_root / "vgg19" / "vgg19_tiny.safetensors"


@pytest.mark.parametrize(("name", "adapters"), [("txt2img", ["monet", "van_gogh"]), ("animals", ["animals"])])
def test_diffusion_plans_embed_the_tiny_base_and_record_its_hashes(tiny_layout, name, adapters):
    plan = CAPABILITIES[name].build_plan(tiny_layout)
    settings = plan.settings
    assert isinstance(settings, DiffusionServiceSettings)
    assert list(settings.adapters) == adapters and settings.lcm_adapter == "lora/lcm.safetensors"
    assert settings.synthetic == ("base_model", *adapters, "lcm") and settings.dtype == "float32"
    tiny_base = tiny_layout.tiny_root / "sd15"
    files = hash_folder(tiny_base)
    assert plan.base_model["embedded"] is True and plan.base_model["path"] == "sd15"
    assert plan.base_model["identity"] == folder_identity(files)
    assert plan.base_model["files"] == [f._asdict() for f in files]


def test_a_misspelt_handler_key_fails_the_build_not_the_worker(tiny_layout, tmp_path):
    base = CAPABILITIES["fast_style"]
    config = base.read_config()
    config["handler"]["default_stlye"] = config["handler"].pop("default_style")
    (tmp_path / "fast_style.yaml").write_text(yaml.safe_dump(config))
    store = tmp_path / "store"
    with pytest.raises(ValueError, match=r"unknown handler settings \['default_stlye'\]"):
        build_archive(replace(base, config=tmp_path / "fast_style.yaml"), tiny_layout, store)
    assert not store.exists()


def test_adapter_keys_reach_the_archive_config_beside_the_settings(tiny_layout, tmp_path):
    base = CAPABILITIES["fast_style"]
    config = base.read_config()
    config["handler"]["fault_injection"] = True
    (tmp_path / "fast_style.yaml").write_text(yaml.safe_dump(config))
    capability = replace(base, config=tmp_path / "fast_style.yaml")
    plan = capability.build_plan(tiny_layout)
    assert capability.handler_config(plan)["handler"]["fault_injection"] is True
    assert archived_settings(capability, plan) == plan.settings


def test_a_renamed_handler_fails_the_build(tmp_path):
    base = CAPABILITIES["fast_style"]
    with pytest.raises(FileNotFoundError, match="fast_style_handlr.py"):
        replace(base, handler=REPO_ROOT / "handlers" / "fast_style_handlr.py").check_handler()
    # TorchServe takes the only class of the handler file: a module of many is refused.
    with pytest.raises(ValueError, match="exactly one TorchServeHandler subclass"):
        replace(base, handler=REPO_ROOT / "handlers" / "services" / "settings.py").check_handler()
    for capability in CAPABILITIES.values():
        capability.check_handler()
