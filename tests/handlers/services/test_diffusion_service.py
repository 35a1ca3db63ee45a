"""DiffusionService without a server: time budget, per-request validation, progress."""

import pytest

from handlers.common.errors import DeadlineExceeded, InvalidField, PromptTooLong
from handlers.common.fields import Fields
from handlers.services.animals import AnimalsService
from handlers.services.txt2img import Txt2ImgService


def test_spent_time_budget_is_504_for_the_batch(service):
    # Rates pinned near zero: admission lets it in, so the deadline is what stops it.
    free = {"unet": 1e-9, "decode_full": 1e-9, "decode_fast": 1e-9, "text": 1e-9}
    txt2img = service(Txt2ImgService, time_budget_s=0.001, cost_rates=free)
    requests = [txt2img.decode_request(Fields({"prompt": "a cat", "steps": 3, "seed": 1}))]
    results = txt2img.predict(requests, lambda i, e: None)
    assert isinstance(results[0], DeadlineExceeded) and results[0].status == 504
    assert "budget" in results[0].message


def test_progress_once_per_step_in_order(service):
    txt2img = service(Txt2ImgService)
    events = []
    requests = [txt2img.decode_request(Fields({"prompt": "a dog", "steps": 3, "seed": 2}))]
    result = txt2img.predict(requests, lambda i, e: events.append((i, e["step"], e["of"])))[0]
    assert events == [(0, 1, 3), (0, 2, 3), (0, 3, 3)]
    assert result.seeds == [2] and result.images[0].size == (64, 64)


def test_validation_happens_per_request_at_decode(service):
    txt2img = service(Txt2ImgService)
    with pytest.raises(PromptTooLong) as error:
        txt2img.decode_request(Fields({"prompt": "word " * 100}))
    assert error.value.status == 422 and "tokens" in error.value.message
    with pytest.raises(InvalidField, match="style"):
        txt2img.decode_request(Fields({"prompt": "x", "style": "van_gogh"}))  # not loaded here
    with pytest.raises(InvalidField, match="width"):
        txt2img.decode_request(Fields({"prompt": "x", "width": 70}))


def test_animals_unknown_class_suggests(service):
    animals = service(AnimalsService)
    with pytest.raises(InvalidField) as error:
        animals.decode_request(Fields({"animal": "elefant"}))
    assert "elephant" in error.value.message
