"""txt2img with a watched adapters folder: a style that appears after setup is accepted (400
before), described with its source, and its loads and hits are counted for the metrics."""

import shutil

import pytest

from handlers.common import metrics
from handlers.common.errors import InvalidField
from handlers.common.fields import Fields
from handlers.common.service import ImageResult
from handlers.services.txt2img import Txt2ImgService
from imagelab.diffusion.lora import read_lora, save_lora

REQUEST = {"prompt": "a harbour", "steps": 2, "seed": 1, "width": 64, "height": 64}


@pytest.fixture
def txt2img(service, tmp_path, monkeypatch):
    monkeypatch.delenv("IMAGELAB_ADAPTERS_DIR", raising=False)
    (tmp_path / "txt2img").mkdir()
    return service(Txt2ImgService, adapters_folder=str(tmp_path), adapter_poll_s=0.0, adapter_cache_max_count=2)


def test_a_style_dropped_after_setup_is_accepted_served_and_described(txt2img, tiny, tmp_path):
    with pytest.raises(InvalidField, match="style"):
        txt2img.decode_request(Fields({**REQUEST, "style": "Dusk-2"}))
    shutil.copy(tiny / "monet.safetensors", tmp_path / "txt2img" / "Dusk-2.safetensors")
    request = txt2img.decode_request(Fields({**REQUEST, "style": "Dusk-2"}))
    [result] = txt2img.predict([request], lambda i, e: None)
    assert isinstance(result, ImageResult) and result.parameters["style"] == "Dusk-2"
    described = txt2img.describe()
    assert "Dusk-2" in described["styles"] and "Dusk-2" in described["fields"]["style"]["choices"]
    assert described["style_sources"]["Dusk-2"]["source"] == "folder"
    assert described["style_sources"]["monet"]["source"] == "archive"
    assert described["style_sources"]["Dusk-2"]["sha256"] == described["style_sources"]["monet"]["sha256"]
    assert txt2img.take_metric_counts() == {
        metrics.ADAPTER_LOADS: 1,
        metrics.ADAPTER_HITS: 0,
        metrics.ADAPTER_EVICTIONS: 0,
    }


def test_a_clash_is_won_by_the_archive_and_said_in_describe(txt2img, tiny, tmp_path):
    shutil.copy(tiny / "lcm.safetensors", tmp_path / "txt2img" / "monet.safetensors")
    described = txt2img.describe()
    assert described["adapters_folder"]["shadowed_by_archive"] == ["monet"]
    assert described["style_sources"]["monet"]["source"] == "archive"


def test_a_misfit_file_is_a_400_naming_the_file_and_the_layer(txt2img, tiny, tmp_path):
    weights, alpha = read_lora(tiny / "monet.safetensors")
    module, (down, up) = next(iter(sorted(weights.items())))
    save_lora(tmp_path / "txt2img" / "wide.safetensors", {module: (down.repeat(1, 2), up)}, alpha=alpha)
    with pytest.raises(InvalidField) as error:
        txt2img.decode_request(Fields({**REQUEST, "style": "wide"}))
    assert error.value.field == "style"
    assert "wide.safetensors" in error.value.message and module in error.value.message
