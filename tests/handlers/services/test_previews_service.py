"""`preview: true` through the diffusion services and the batch runner, on the tiny SD 1.5:
streamed progress events carry small decodable JPEGs at the cadence preview.py sets; off by
default, and without stream it costs nothing and adds nothing."""

import base64
import io
import json

import pytest
from PIL import Image

from handlers.common.fields import Fields
from handlers.common.runner import BatchRunner
from handlers.services.animals import AnimalsService
from handlers.services.txt2img import Txt2ImgService
from imagelab.diffusion.preview import PREVIEW_MAX_SIDE_PX, preview_due


def image_of(preview: dict) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(preview["image"], validate=True)))
    image.load()
    return image


@pytest.fixture(scope="module")
def txt2img(service):
    return service(Txt2ImgService)


def stream(service, fields: dict) -> list:
    events = []
    requests = [service.decode_request(Fields({"stream": True, **fields}))]
    [result] = service.predict(requests, lambda index, event: events.append(event))
    assert result.images, result
    return events


def test_stream_with_preview_carries_small_jpegs_at_the_due_steps(txt2img):
    events = stream(txt2img, {"prompt": "a red barn", "steps": 10, "seed": 3, "preview": True})
    assert [e["step"] for e in events] == list(range(1, 11))
    due = [e["step"] for e in events if "preview" in e]
    assert due == [s for s in range(1, 11) if preview_due(s, 10)] == [2, 4, 6, 8, 10]
    for event in events:
        if "preview" in event:
            preview = event["preview"]
            image = image_of(preview)
            assert image.format == "JPEG" and preview["format"] == "jpeg"
            assert image.size == (preview["width"], preview["height"])
            assert max(image.size) <= PREVIEW_MAX_SIDE_PX and image.size == (64, 64)  # the tiny model's 64 px


def test_previews_follow_the_denoising(txt2img):
    """Successive previews differ (the latents change), and equal requests give equal previews."""
    fields = {"prompt": "a red barn", "steps": 4, "seed": 3, "preview": True}
    first = [e["preview"]["image"] for e in stream(txt2img, fields)]
    again = [e["preview"]["image"] for e in stream(txt2img, fields)]
    assert first == again and len(set(first)) == 4


def test_preview_is_off_by_default_and_not_echoed(txt2img):
    events = stream(txt2img, {"prompt": "a red barn", "steps": 3, "seed": 3})
    assert len(events) == 3 and not any("preview" in e for e in events)
    request = txt2img.decode_request(Fields({"prompt": "x", "preview": True}))
    assert request.preview and "preview" not in request.parameters
    assert txt2img.describe()["fields"]["preview"]["default"] is False


def test_preview_without_stream_touches_no_latents(txt2img, monkeypatch):
    calls = []
    original = txt2img.engine.generate_each
    monkeypatch.setattr(
        txt2img.engine, "generate_each", lambda *a, **k: calls.append(k.get("on_latents")) or original(*a, **k)
    )
    requests = [txt2img.decode_request(Fields({"prompt": "x", "steps": 2, "seed": 1, "preview": True}))]
    events = []
    txt2img.predict(requests, lambda index, event: events.append(event))
    assert calls == [None] and not any("preview" in e for e in events)


def test_only_the_request_that_asks_gets_previews_in_a_shared_batch(txt2img):
    events = {0: [], 1: []}
    requests = [
        txt2img.decode_request(Fields({"prompt": "a", "steps": 2, "seed": 1, "stream": True, "preview": True})),
        txt2img.decode_request(Fields({"prompt": "b", "steps": 2, "seed": 2, "stream": True})),
    ]
    txt2img.predict(requests, lambda index, event: events[index].append(event))
    assert [("preview" in e) for e in events[0]] == [True, True]
    assert [("preview" in e) for e in events[1]] == [False, False]


def test_animals_previews(service):
    animals = service(AnimalsService)
    events = stream(animals, {"animal": "lion", "steps": 2, "seed": 1, "preview": "true", "scheduler": "ddim"})
    assert all(image_of(e["preview"]).size == (64, 64) for e in events)


def test_ndjson_progress_lines_carry_the_preview(txt2img):
    chunks = []
    runner = BatchRunner(txt2img, "txt2img", "1.0")
    raw = {"prompt": b"a barn", "steps": b"2", "seed": b"4", "stream": b"true", "preview": b"true"}
    [reply] = runner.run([(raw, {})], send_chunk=lambda index, data: chunks.append(data))
    lines = [json.loads(line) for chunk in chunks for line in chunk.decode().splitlines() if line]
    progress = [line for line in lines if line["type"] == "progress"]
    assert [p["step"] for p in progress] == [1, 2]
    assert all(image_of(p["preview"]).size == (64, 64) for p in progress)
    assert reply.status == 200
