"""Shared helpers for the handlers/common tests: images are built in code, never read from disk."""

import io

import pytest
from PIL import Image


def _save(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


@pytest.fixture
def save_image():
    """save_image(image, "PNG", **params) -> the encoded bytes."""
    return _save


@pytest.fixture
def png_bytes() -> bytes:
    """A small RGB PNG with distinct corners, so decoding mistakes show."""
    image = Image.new("RGB", (6, 4), (10, 20, 30))
    image.putpixel((0, 0), (255, 0, 0))
    image.putpixel((5, 3), (0, 0, 255))
    return _save(image, "PNG")
