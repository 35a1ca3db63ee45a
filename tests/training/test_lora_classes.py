"""A LoRA trained on class folders carries its class list: in the run (config.json) and in
both exported files' metadata, which the animals service then serves."""

import json

import pytest

from handlers.common.service import ServiceContext
from handlers.services.animals import AnimalsService
from imagelab.diffusion import synthesize_tiny_lora
from imagelab.diffusion.animals import read_lora_classes
from training.lora.config import LoraTrainConfig
from training.lora.train import train_lora

SMALL = dict(
    resolution_px=32,
    batch_size=2,
    max_steps=2,
    checkpoint_every=0,
    validation_images=1,
    validation_steps=1,
    mixed_precision="no",
    augmentation={"variants": 1},
)


@pytest.fixture(scope="module")
def run(shapes, tiny_sd15, weights_root, tmp_path_factory):
    config = LoraTrainConfig(data_dir=shapes, model_dir=tiny_sd15, weights_dir=weights_root, **SMALL)
    return train_lora(config, tmp_path_factory.mktemp("runs") / "classes", argv=["x"])


def test_the_run_and_both_exports_carry_the_class_folders(run):
    assert json.loads((run.run_dir / "config.json").read_text())["labels"] == ["circle", "square"]
    assert read_lora_classes(run.weights_path).names == ("circle", "square")
    assert run.best_path is not None and read_lora_classes(run.best_path).names == ("circle", "square")


def _animals_service(tiny_sd15, lora, tmp_path):
    lcm = synthesize_tiny_lora(tmp_path / "lcm.safetensors", tiny_sd15 / "unet", seed=2)
    settings = {
        "base_model": str(tiny_sd15),
        "lcm_adapter": str(lcm),
        "dtype": "float32",
        "adapters": {"animals": str(lora)},
    }
    service = AnimalsService()
    service.setup(ServiceContext("animals", "2.0", tmp_path, settings, "cpu"))
    return service


def test_the_animals_service_serves_the_loras_own_classes(run, tiny_sd15, tmp_path):
    service = _animals_service(tiny_sd15, run.best_path, tmp_path)
    described = service.describe()
    assert described["classes"] == ["circle", "square"] and described["classes_source"] == "lora"
    assert described["fields"]["animal"]["choices"] == ["circle", "square"]


def test_a_lora_without_a_class_list_serves_the_built_in_classes(tiny_sd15, tmp_path):
    lora = synthesize_tiny_lora(tmp_path / "animals.safetensors", tiny_sd15 / "unet", seed=1)
    described = _animals_service(tiny_sd15, lora, tmp_path).describe()
    assert len(described["classes"]) == 100 and described["classes_source"] == "built-in"
    assert "tiger" in described["classes"]
