"""Training publishes explicitly: the exported file is copied into the weights folder under
the capability's naming, never over a different real file unless asked."""

import pytest

from training.publish import PublishConflict, publish_weights
from weightstore.needs import trained_weights_file


@pytest.fixture
def exported(tmp_path):
    path = tmp_path / "run" / "export" / "blocky.safetensors"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"trained weights")
    return path


def test_the_capability_names_where_a_trained_file_goes():
    assert trained_weights_file("txt2img", "blocky") == "lora/blocky.safetensors"
    assert trained_weights_file("animals", "anything") == "lora/animals.safetensors"
    assert trained_weights_file("fast_style", "swirl") == "fast_style/swirl.safetensors"
    with pytest.raises(ValueError, match="reserved"):
        trained_weights_file("txt2img", "lcm")
    with pytest.raises(ValueError, match="no trained weights"):
        trained_weights_file("neural_style", "x")


def test_publish_copies_once_and_refuses_a_different_real_file(tmp_path, exported):
    weights = tmp_path / "weights"
    target = publish_weights("txt2img", exported, "lora/blocky.safetensors", weights)
    assert target == weights / "lora" / "blocky.safetensors" and target.read_bytes() == b"trained weights"
    assert publish_weights("txt2img", exported, "lora/blocky.safetensors", weights) == target  # same bytes: fine
    other = tmp_path / "other.safetensors"
    other.write_bytes(b"another run")
    with pytest.raises(PublishConflict, match="blocky.safetensors already exists"):
        publish_weights("txt2img", other, "lora/blocky.safetensors", weights)
    assert target.read_bytes() == b"trained weights"
    publish_weights("txt2img", other, "lora/blocky.safetensors", weights, overwrite=True)
    assert target.read_bytes() == b"another run"
    assert sorted(p.name for p in target.parent.iterdir()) == ["blocky.safetensors"]  # no staging left


def test_a_twin_with_another_suffix_counts_as_a_different_file(tmp_path, exported):
    weights = tmp_path / "weights"
    (weights / "fast_style").mkdir(parents=True)
    (weights / "fast_style" / "swirl.pth").write_bytes(b"an old checkpoint")
    with pytest.raises(PublishConflict, match="swirl.pth"):
        publish_weights("fast_style", exported, "fast_style/swirl.safetensors", weights)
    publish_weights("fast_style", exported, "fast_style/swirl.safetensors", weights, overwrite=True)
    assert sorted(p.name for p in (weights / "fast_style").iterdir()) == ["swirl.safetensors"]


def test_a_file_outside_the_capability_naming_is_refused(tmp_path, exported):
    with pytest.raises(ValueError, match="published as lora/blocky.safetensors"):
        publish_weights("txt2img", exported, "loras/blocky.safetensors", tmp_path / "weights")
