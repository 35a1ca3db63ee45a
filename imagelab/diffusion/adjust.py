"""Colour adjustments on generated images: brightness, contrast, saturation (PIL ImageEnhance).

Each factor is in [0, 3]; 1 leaves the image byte-for-byte unchanged, 0 gives black (brightness),
flat mid grey (contrast) or greyscale (saturation). Applied in that fixed order.
"""

from dataclasses import dataclass

from PIL import Image, ImageEnhance

MIN_FACTOR, MAX_FACTOR = 0.0, 3.0


@dataclass(frozen=True)
class ColorAdjustment:
    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0

    def __post_init__(self):
        for name in ("brightness", "contrast", "saturation"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{name} must be a number in [{MIN_FACTOR}, {MAX_FACTOR}], got {value!r}")
            if not MIN_FACTOR <= value <= MAX_FACTOR:
                raise ValueError(f"{name} must be in [{MIN_FACTOR}, {MAX_FACTOR}], got {value}")

    @property
    def is_identity(self) -> bool:
        return self.brightness == 1.0 and self.contrast == 1.0 and self.saturation == 1.0


_ENHANCERS = (
    ("brightness", ImageEnhance.Brightness),
    ("contrast", ImageEnhance.Contrast),
    ("saturation", ImageEnhance.Color),
)


def adjust_colors(image: Image.Image, adjustment: ColorAdjustment) -> Image.Image:
    """Return the adjusted image (RGB, RGBA with alpha kept, or L); the input is not modified."""
    if image.mode not in ("RGB", "RGBA", "L"):
        raise ValueError(f"image mode must be RGB, RGBA or L, got {image.mode}")
    if adjustment.is_identity:
        return image.copy()
    alpha = image.getchannel("A") if image.mode == "RGBA" else None
    result = image.convert("RGB") if alpha is not None else image
    for name, enhancer in _ENHANCERS:
        factor = getattr(adjustment, name)
        # Skipped at 1.0: PIL's blend would round-trip through float and may move bytes.
        if factor != 1.0 and not (name == "saturation" and result.mode == "L"):
            result = enhancer(result).enhance(factor)
    if alpha is not None:
        result.putalpha(alpha)
    return result
