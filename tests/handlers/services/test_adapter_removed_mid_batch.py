"""Regression (issue 19): a folder style's file removed between its request's decode and its
batch used to fail that group with a KeyError, a 500. Now the request gets a 400 naming the
style, whenever in the batch the worker notices, and its neighbours get their images."""

import shutil

import pytest

from handlers.common.errors import InvalidField
from handlers.common.fields import Fields
from handlers.common.service import ImageResult
from handlers.services.txt2img import Txt2ImgService

REQUEST = {"prompt": "a harbour", "steps": 2, "seed": 1, "width": 64, "height": 64}
NEVER_S = 1e9  # a poll interval the test never reaches: the folder re-lists only when told


@pytest.fixture
def txt2img(service, tmp_path, monkeypatch):
    monkeypatch.delenv("IMAGELAB_ADAPTERS_DIR", raising=False)
    (tmp_path / "txt2img").mkdir()
    return service(Txt2ImgService, adapters_folder=str(tmp_path), adapter_poll_s=0.0, adapter_cache_max_count=2)


def decoded_batch(txt2img, tiny, tmp_path):
    """[archived style, folder style 'Dusk', no style], each decoded while Dusk's file is there;
    three groups, the folder style's in the middle."""
    shutil.copy(tiny / "monet.safetensors", tmp_path / "txt2img" / "Dusk.safetensors")
    txt2img.engine.on_demand.folder.refresh(force=True)
    return [txt2img.decode_request(Fields({**REQUEST, "style": style})) for style in ("monet", "Dusk", "none")]


def assert_only_dusk_refused(results):
    monet, dusk, none = results
    assert isinstance(monet, ImageResult) and isinstance(none, ImageResult)
    assert isinstance(dusk, InvalidField), dusk
    assert dusk.status == 400 and dusk.field == "style"
    assert "'Dusk'" in dusk.message


def test_removed_before_the_batch_is_a_400_for_that_request_only(txt2img, tiny, tmp_path):
    batch = decoded_batch(txt2img, tiny, tmp_path)
    (tmp_path / "txt2img" / "Dusk.safetensors").unlink()
    assert_only_dusk_refused(txt2img.predict(batch, lambda i, e: None))


def test_removed_while_an_earlier_group_runs_is_a_400_not_a_key_error(txt2img, tiny, tmp_path):
    """The folder re-lists when the style's group starts (after the batch was validated): the
    style is gone from the listing when `ensure` asks for it (the KeyError of the bug)."""
    txt2img.engine.on_demand.folder.poll_s = NEVER_S
    batch = decoded_batch(txt2img, tiny, tmp_path)

    def remove_during_the_first_group(index, event):
        if (tmp_path / "txt2img" / "Dusk.safetensors").exists():
            (tmp_path / "txt2img" / "Dusk.safetensors").unlink()
            txt2img.engine.on_demand.folder.poll_s = 0.0

    assert_only_dusk_refused(txt2img.predict(batch, remove_during_the_first_group))


def test_removed_after_the_last_listing_fails_its_load_and_is_a_400(txt2img, tiny, tmp_path):
    """The listing still names the file when its group loads it: the load fails, the folder is
    re-listed at once, and the request is told the style is gone."""
    txt2img.engine.on_demand.folder.poll_s = NEVER_S
    batch = decoded_batch(txt2img, tiny, tmp_path)

    def remove_during_the_first_group(index, event):
        (tmp_path / "txt2img" / "Dusk.safetensors").unlink(missing_ok=True)

    assert_only_dusk_refused(txt2img.predict(batch, remove_during_the_first_group))
    assert "Dusk" not in txt2img.engine.styles and "Dusk" not in txt2img.engine.on_demand.loaded


def test_a_file_replaced_by_a_misfit_is_a_400_naming_the_file_and_the_layer(txt2img, tiny, tmp_path):
    from imagelab.diffusion.lora import read_lora, save_lora

    txt2img.engine.on_demand.folder.poll_s = NEVER_S
    batch = decoded_batch(txt2img, tiny, tmp_path)
    weights, alpha = read_lora(tiny / "monet.safetensors")
    module, (down, up) = next(iter(sorted(weights.items())))
    misfit = save_lora(tmp_path / "wide.safetensors", {module: (down.repeat(1, 2), up)}, alpha=alpha)

    def replace_during_the_first_group(index, event):
        if misfit.exists():
            shutil.move(misfit, tmp_path / "txt2img" / "Dusk.safetensors")
            txt2img.engine.on_demand.folder.poll_s = 0.0

    results = txt2img.predict(batch, replace_during_the_first_group)
    assert_only_dusk_refused(results)
    assert "Dusk.safetensors" in results[1].message and module in results[1].message
