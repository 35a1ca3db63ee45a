"""Colour adjustment of a local image with the server's math: brightness, then contrast, then
saturation, each a factor in [0, 3] where 1 leaves the image as it is.

The same operations as the server's `imagelab.diffusion.adjust` (which the client may not import:
it ships without the server packages). Both are Pillow's ImageEnhance blends, so the bytes are
identical; tests/integration/test_client.py checks that against the server's function."""

from dataclasses import dataclass

from PIL import Image, ImageEnhance

MIN_FACTOR, MAX_FACTOR = 0.0, 3.0
# Applied in this order, as the server and the playground's canvas (frontend/src/adjust.js) do.
ORDER = ("brightness", "contrast", "saturation")
_ENHANCERS = {
    "brightness": ImageEnhance.Brightness,
    "contrast": ImageEnhance.Contrast,
    "saturation": ImageEnhance.Color,
}


@dataclass(frozen=True)
class Adjustment:
    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0

    def __post_init__(self):
        for name in ORDER:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{name} must be a number in [{MIN_FACTOR}, {MAX_FACTOR}], got {value!r}")
            if not MIN_FACTOR <= value <= MAX_FACTOR:
                raise ValueError(f"{name} must be in [{MIN_FACTOR}, {MAX_FACTOR}], got {value}")


def adjust(image: Image.Image, adjustment: Adjustment) -> Image.Image:
    """The adjusted copy of `image` (RGB, or RGBA with its alpha kept, or L; other modes become RGB)."""
    if image.mode not in ("RGB", "RGBA", "L"):
        image = image.convert("RGB")
    alpha = image.getchannel("A") if image.mode == "RGBA" else None
    result = image.convert("RGB") if alpha is not None else image.copy()
    for name in ORDER:
        factor = getattr(adjustment, name)
        # A factor of 1 is skipped: the blend would round-trip through float for nothing.
        if factor != 1.0 and not (name == "saturation" and result.mode == "L"):
            result = _ENHANCERS[name](result).enhance(factor)
    if alpha is not None:
        result.putalpha(alpha)
    return result
