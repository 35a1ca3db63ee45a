"""One small real request per model, sent to a freshly registered version before it may become
the default: it proves the archive loads, runs its model and encodes an image, in seconds
(64 px, 2 steps), whatever the weights."""

import io
import json
import time
from typing import Callable, NamedTuple

import requests
from PIL import Image


class SmokeResult(NamedTuple):
    ok: bool
    status: int
    elapsed_ms: float
    detail: str  # the image size on success, the server's message on failure


def gradient_png(size_px: int = 64, tint: tuple = (255, 128, 0)) -> bytes:
    """A small deterministic picture with structure in both directions (a flat colour would
    not show a broken model)."""
    image = Image.new("RGB", (size_px, size_px))
    image.putdata(
        [
            (tint[0] * x // size_px, tint[1] * y // size_px, tint[2] * (x + y) // (2 * size_px))
            for y in range(size_px)
            for x in range(size_px)
        ]
    )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _fast_style() -> dict:
    return {"files": {"image": ("smoke.png", gradient_png())}, "data": {"max_side_px": "64"}}


def _neural_style() -> dict:
    return {
        "files": {
            "content": ("content.png", gradient_png()),
            "style_image": ("style.png", gradient_png(tint=(0, 200, 255))),
        },
        "data": {"steps": "2", "max_side_px": "64", "seed": "0"},
    }


def _txt2img() -> dict:
    return {"json": {"prompt": "a lighthouse at dusk", "steps": 2, "width": 64, "height": 64, "seed": 0}}


def _animals() -> dict:
    return {"json": {"animal": "cat", "steps": 2, "width": 64, "height": 64, "seed": 0}}


# Field names as in API.md's model table.
SMOKE_REQUESTS: dict = {
    "fast_style": _fast_style,
    "neural_style": _neural_style,
    "txt2img": _txt2img,
    "animals": _animals,
}


def smoke_request(model: str) -> dict:
    """requests keyword arguments (files/data or json) of the model's smoke request."""
    try:
        make: Callable[[], dict] = SMOKE_REQUESTS[model]
    except KeyError:
        raise ValueError(f"no smoke request for model {model!r}; known: {sorted(SMOKE_REQUESTS)}") from None
    return make()


def run_smoke_test(
    inference_url: str, model: str, version: str, headers: dict, timeout_s: float = 300.0
) -> SmokeResult:
    """POST the smoke request to /predictions/{model}/{version}: ok when the answer is 200 and
    holds a decodable image (raw, or the first of a JSON `images` list)."""
    started = time.perf_counter()
    try:
        answer = requests.post(
            f"{inference_url}/predictions/{model}/{version}", headers=headers, timeout=timeout_s, **smoke_request(model)
        )
    except requests.RequestException as error:
        return SmokeResult(False, 0, (time.perf_counter() - started) * 1e3, f"no answer: {error}")
    elapsed_ms = (time.perf_counter() - started) * 1e3
    if answer.status_code != 200:
        return SmokeResult(False, answer.status_code, elapsed_ms, answer.text[:500])
    try:
        image = Image.open(io.BytesIO(_image_bytes(answer)))
        image.load()
    except (OSError, ValueError, KeyError, IndexError) as error:
        return SmokeResult(False, answer.status_code, elapsed_ms, f"the answer is not an image: {error}")
    return SmokeResult(True, answer.status_code, elapsed_ms, f"{image.format} {image.width}x{image.height}")


def _image_bytes(answer: requests.Response) -> bytes:
    if answer.headers.get("Content-Type", "").startswith("application/json"):
        import base64

        return base64.b64decode(json.loads(answer.content)["images"][0])
    return answer.content
