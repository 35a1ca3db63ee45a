"""Images in (paths, bytes, file objects or PIL images) and out (PIL images)."""

import io
import os
from typing import Union

from PIL import Image

ImageInput = Union[str, os.PathLike, bytes, bytearray, Image.Image, io.IOBase]

# Magic numbers of the formats the server writes (API.md, Responses).
_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpeg"), (b"RIFF", "webp"))


def image_bytes(image: ImageInput) -> bytes:
    """The encoded image to send. PIL images go as PNG: lossless, so the server sees exactly
    these pixels."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        return bytes(image)
    if isinstance(image, Image.Image):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()
    if isinstance(image, (str, os.PathLike)):
        with open(image, "rb") as file:
            return file.read()
    if hasattr(image, "read"):
        return image.read()
    raise TypeError(f"an image must be a path, bytes, a file object or a PIL image, not {type(image).__name__}")


def decode_image(encoded: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(encoded))
    image.load()
    return image


def sniff_format(encoded: bytes) -> str:
    for signature, name in _SIGNATURES:
        if encoded.startswith(signature):
            return name
    return "bin"
