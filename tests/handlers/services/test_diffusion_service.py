"""DiffusionService without a server: time budget, per-request validation, progress."""

from pathlib import Path

import pytest

from handlers.common.errors import DeadlineExceeded, InvalidField, PromptTooLong
from handlers.common.fields import Fields
from handlers.common.service import ServiceContext
from handlers.services.animals import AnimalsService
from handlers.services.txt2img import Txt2ImgService
from imagelab.diffusion import synthesize_tiny_lora, synthesize_tiny_sd15


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny_sd")
    synthesize_tiny_sd15(root / "sd15")
    for seed, name in enumerate(("monet", "animals", "lcm")):
        synthesize_tiny_lora(root / f"{name}.safetensors", root / "sd15" / "unet", seed=seed)
    return root


def service(cls, tiny: Path, **settings):
    base = {
        "base_model": str(tiny / "sd15"),
        "lcm_adapter": str(tiny / "lcm.safetensors"),
        "dtype": "float32",
        "adapters": {
            "monet" if cls is Txt2ImgService else "animals": str(
                tiny / ("monet.safetensors" if cls is Txt2ImgService else "animals.safetensors")
            )
        },
    }
    instance = cls()
    instance.setup(ServiceContext(cls.name, "1.0", tiny, {**base, **settings}, "cpu"))
    return instance


def test_spent_time_budget_is_504_for_the_batch(tiny):
    txt2img = service(Txt2ImgService, tiny, time_budget_s=0.001)
    requests = [txt2img.decode_request(Fields({"prompt": "a cat", "steps": 3, "seed": 1}))]
    results = txt2img.predict(requests, lambda i, e: None)
    assert isinstance(results[0], DeadlineExceeded) and results[0].status == 504
    assert "budget" in results[0].message


def test_progress_once_per_step_in_order(tiny):
    txt2img = service(Txt2ImgService, tiny)
    events = []
    requests = [txt2img.decode_request(Fields({"prompt": "a dog", "steps": 3, "seed": 2}))]
    result = txt2img.predict(requests, lambda i, e: events.append((i, e["step"], e["of"])))[0]
    assert events == [(0, 1, 3), (0, 2, 3), (0, 3, 3)]
    assert result.seeds == [2] and result.images[0].size == (64, 64)


def test_validation_happens_per_request_at_decode(tiny):
    txt2img = service(Txt2ImgService, tiny)
    with pytest.raises(PromptTooLong) as error:
        txt2img.decode_request(Fields({"prompt": "word " * 100}))
    assert error.value.status == 422 and "tokens" in error.value.message
    with pytest.raises(InvalidField, match="style"):
        txt2img.decode_request(Fields({"prompt": "x", "style": "van_gogh"}))  # not loaded here
    with pytest.raises(InvalidField, match="width"):
        txt2img.decode_request(Fields({"prompt": "x", "width": 70}))


def test_animals_unknown_class_suggests(tiny):
    animals = service(AnimalsService, tiny)
    with pytest.raises(InvalidField) as error:
        animals.decode_request(Fields({"animal": "elefant"}))
    assert "elephant" in error.value.message
