"""The class list travels with the animals LoRA: written into its safetensors metadata, read
back by the server, the built-in list only when the file carries none."""

import pytest
import safetensors
import torch

from imagelab.diffusion.animals import (
    CLASSES_METADATA_KEY,
    AnimalClasses,
    classes_for_lora,
    read_lora_classes,
    write_lora_classes,
)
from imagelab.diffusion.lora import read_lora, save_lora

WEIGHTS = {"down_blocks.0.attn.to_q": (torch.arange(8.0).reshape(2, 4), torch.ones(4, 2))}


@pytest.fixture
def lora(tmp_path):
    return save_lora(tmp_path / "animals.safetensors", WEIGHTS, alpha=16.0)


def test_written_classes_are_read_back_normalised_and_the_weights_are_untouched(lora):
    written = write_lora_classes(lora, ["Snow Leopard", "red-panda", "axolotl"])
    assert written.names == ("snow_leopard", "red_panda", "axolotl")
    assert read_lora_classes(lora) == written == classes_for_lora(lora)
    weights, alpha = read_lora(lora)
    assert alpha == 16.0 and torch.equal(weights["down_blocks.0.attn.to_q"][0], WEIGHTS["down_blocks.0.attn.to_q"][0])
    with safetensors.safe_open(str(lora), framework="pt") as handle:  # still a valid file for safetensors itself
        assert CLASSES_METADATA_KEY in handle.metadata()


def test_the_same_lora_and_classes_give_the_same_bytes(lora, tmp_path):
    other = save_lora(tmp_path / "again.safetensors", WEIGHTS, alpha=16.0)
    for path in (lora, other):
        write_lora_classes(path, ["tiger", "lion"])
    assert lora.read_bytes() == other.read_bytes()
    write_lora_classes(other, ["tiger", "lion"])  # writing again replaces, never duplicates
    assert lora.read_bytes() == other.read_bytes()


def test_a_lora_without_classes_gets_the_built_in_list(lora):
    assert read_lora_classes(lora) is None
    assert classes_for_lora(lora) == AnimalClasses.load() and len(classes_for_lora(lora)) == 100


def test_duplicate_or_empty_class_lists_are_refused(lora):
    with pytest.raises(ValueError, match="duplicate"):
        write_lora_classes(lora, ["Tiger", "tiger"])
    with pytest.raises(ValueError, match="empty"):
        write_lora_classes(lora, [])
    assert read_lora_classes(lora) is None  # a refused list leaves the file as it was
