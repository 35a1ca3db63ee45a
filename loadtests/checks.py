"""Is an answer a correct image? One function, shared by the locust users and the warm-up, so a
fast wrong answer (an error page, a black picture, a safety-checker hit) never counts as a
success. Stand-alone (Pillow only) so the unit tests import it directly."""

import base64
import binascii
import io
import json
from typing import Optional

from PIL import Image, UnidentifiedImageError

# A picture whose brightest channel value is at most this is black: what a NaN decode or a
# safety-checker replacement looks like.
BLACK_MAX_VALUE = 2
PIL_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}


def _decode(body: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(body))
    image.load()
    return image


def _is_black(image: Image.Image) -> bool:
    extrema = image.convert("RGB").getextrema()  # ((min, max) per band)
    return max(high for _, high in extrema) <= BLACK_MAX_VALUE


def image_problem(image: Image.Image, size: tuple) -> Optional[str]:
    if image.size != tuple(size):
        return f"image is {image.size[0]}x{image.size[1]}, expected {size[0]}x{size[1]}"
    if _is_black(image):
        return "image is black"
    return None


def answer_problem(status: int, content_type: str, body: bytes, size: tuple, expected_type: str) -> Optional[str]:
    """None when the answer is a `size` image of `expected_type` (an image type, or
    application/json with base64 images and nsfw flags); else what is wrong, short enough to
    group failures by in locust's report."""
    if status != 200:
        return (
            f"HTTP {status}: {body[:120].decode('utf-8', 'replace')}"
            if status
            else "no answer (connection error or timeout)"
        )
    got_type = (content_type or "").split(";")[0].strip().lower()
    if got_type != expected_type:
        return f"content type {got_type or 'missing'}, expected {expected_type}"
    if expected_type == "application/json":
        return _json_problem(body, size)
    try:
        image = _decode(body)
    except (UnidentifiedImageError, OSError, ValueError) as error:
        return f"undecodable image: {type(error).__name__}"
    if image.format != PIL_FORMATS.get(expected_type):
        return f"image format {image.format}, expected {PIL_FORMATS.get(expected_type)}"
    return image_problem(image, size)


def _json_problem(body: bytes, size: tuple) -> Optional[str]:
    try:
        document = json.loads(body)
        images = [_decode(base64.b64decode(text, validate=True)) for text in document["images"]]
    except (ValueError, KeyError, TypeError, binascii.Error, UnidentifiedImageError, OSError) as error:
        return f"malformed JSON answer: {type(error).__name__}"
    if not images:
        return "JSON answer has no images"
    if any(document.get("nsfw") or []):
        return "nsfw flag set"
    for image in images:
        problem = image_problem(image, size)
        if problem:
            return problem
    return None
