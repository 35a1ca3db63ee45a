"""The class list travels with the LoRA, through the archive (issue 18.2): an animals LoRA
that carries its own classes in its safetensors metadata (as training writes them, with
imagelab.diffusion.animals.write_lora_classes) is built into an animals archive version and
served by a real TorchServe with those classes: describe lists them, a request for one of
them is drawn, and a class only the built-in list knows is a 400 naming the field."""

import json

import pytest
import requests
from support import assert_error, decode, model_config, own_server

from archiver.capabilities import CAPABILITIES
from imagelab.diffusion import synthesize_tiny_lora
from imagelab.diffusion.animals import AnimalClasses, write_lora_classes
from imagelab.weights_io import sha256_of
from weightstore.layout import WeightsLayout

OWN_CLASSES = ["Quokka", "axolotl", "Snow-Owl"]  # none of them in the built-in 100
SERVED = ["quokka", "axolotl", "snow_owl"]
VERSION = "2.0"
FAST = {"steps": 2, "width": 64, "height": 64, "seed": 5, "scheduler": "lcm", "guidance": 1.0}


@pytest.fixture(scope="module")
def lora_weights(tmp_path_factory):
    """A weights root with the default tiny twins (base model, LCM-LoRA) and a tiny animals
    LoRA of its own, written for the tiny base with its own class list."""
    default = WeightsLayout.default()
    CAPABILITIES["animals"].build_plan(default)  # makes sure the tiny twins exist
    root = tmp_path_factory.mktemp("animal_classes_weights")
    (root / ".tiny").mkdir()
    for entry in default.tiny_root.iterdir():
        (root / ".tiny" / entry.name).symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
    lora = synthesize_tiny_lora(root / "lora" / "animals.safetensors", default.tiny_root / "sd15" / "unet", seed=7)
    write_lora_classes(lora, OWN_CLASSES)
    return WeightsLayout(root), lora


@pytest.fixture(scope="module")
def served(lora_weights, tmp_path_factory):
    layout, _ = lora_weights
    with own_server(tmp_path_factory, "animals", model_config("animals"), layout=layout, version=VERSION) as pair:
        yield pair


def describe(server) -> dict:
    headers = {"Authorization": f"Bearer {server.keys().management}"}
    answer = requests.get(
        f"{server.management_url}/models/animals/{VERSION}?customized=true", headers=headers, timeout=60
    )
    assert answer.status_code == 200, answer.text
    metadata = answer.json()[0]["customizedMetadata"]
    return json.loads(metadata) if isinstance(metadata, str) else metadata


def test_describe_lists_the_loras_own_classes_and_the_archive_holds_that_lora(served, lora_weights):
    server, _ = served
    described = describe(server)
    assert described["version"] == VERSION
    assert described["classes"] == SERVED and described["classes_source"] == "lora"
    assert described["fields"]["animal"]["choices"] == SERVED
    entry = next(w for w in described["manifest"]["weights"] if w["path"] == "lora/animals.safetensors")
    assert entry["synthetic"] is False and entry["sha256"] == sha256_of(lora_weights[1])


def test_a_class_of_the_loras_list_is_drawn(served):
    _, session = served
    url = f"{served[0].inference_url}/predictions/animals/{VERSION}"
    answer = session.post(url, json={**FAST, "animal": "snow owl", "response_format": "json"}, timeout=300)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model_version"] == VERSION and body["parameters"]["animal"] == "snow_owl"
    assert "snow owl" in body["parameters"]["prompt"]
    image = session.post(url, json={**FAST, "animal": "Quokka"}, timeout=300)
    assert image.status_code == 200, image.text
    assert decode(image).size == (64, 64)


def test_a_built_in_only_class_is_refused_naming_the_field(served):
    server, session = served
    assert "tiger" in AnimalClasses.load()  # the built-in list has it; this LoRA does not
    answer = session.post(f"{server.inference_url}/predictions/animals", json={**FAST, "animal": "tiger"}, timeout=300)
    body = assert_error(answer, 400, "animal")
    assert "tiger" in body["message"]
