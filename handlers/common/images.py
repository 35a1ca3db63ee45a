"""Image bytes in and out: a format allow-list, size checks from the header before any pixel is
decoded, and normalisation of every mode Pillow can hand us to 8-bit RGB."""

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from handlers.common.errors import InvalidField, TooLarge

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP")
OUTPUT_FORMATS = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 36_000_000  # 6000 x 6000
    max_side_px: int = 8192

    def __post_init__(self):
        for name in ("max_bytes", "max_pixels", "max_side_px"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ImageLimits.{name} must be positive")


def decode_image(data: bytes, field: str, limits: ImageLimits) -> Image.Image:
    """Bytes of a JPEG, PNG or WEBP file -> an RGB image, upright per its EXIF orientation."""
    if not data:
        raise InvalidField(f"'{field}' is empty; send a JPEG, PNG or WEBP image", field)
    if len(data) > limits.max_bytes:
        raise TooLarge(f"'{field}' is {len(data)} bytes; the limit is {limits.max_bytes} bytes", field)
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError:
        raise TooLarge(f"'{field}' decompresses to too many pixels", field) from None
    except Exception:
        raise InvalidField(
            f"'{field}' could not be decoded as an image; accepted formats: JPEG, PNG, WEBP",
            field,
        ) from None
    width, height = image.size  # read from the header, nothing decoded yet
    if max(width, height) > limits.max_side_px or width * height > limits.max_pixels:
        raise TooLarge(
            f"'{field}' is {width}x{height}; the limits are {limits.max_side_px} px per side "
            f"and {limits.max_pixels} pixels",
            field,
        )
    try:
        with warnings.catch_warnings():
            # A decompression bomb is an attack, not a warning to log and carry on from.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.seek(0)  # animated images: the first frame
            image.load()
            return to_rgb(ImageOps.exif_transpose(image))
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise TooLarge(f"'{field}' decompresses to too many pixels", field) from None
    except Exception:
        raise InvalidField(f"'{field}' is truncated or corrupt; accepted formats: JPEG, PNG, WEBP", field) from None


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB. Transparency is composited onto white (what a viewer
    shows), 16-bit is scaled rather than clipped, CMYK and palettes are converted."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        pixels = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or pixels.max() > 255 else 255.0
        gray = np.clip(np.rint(pixels / top * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB")
    if image.mode == "F":
        pixels = np.nan_to_num(np.asarray(image, dtype=np.float64))
        gray = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if image.mode != "RGB":
        return image.convert("RGB")
    return image


def resize_to_fit(image: Image.Image, max_side_px: int) -> Image.Image:
    """Shrink so the longest side is at most max_side_px, keeping the aspect; never enlarge."""
    width, height = image.size
    longest = max(width, height)
    if longest <= max_side_px:
        return image
    scale = max_side_px / longest
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def encode_image(image: Image.Image, fmt: str, quality: int) -> bytes:
    """PIL image -> encoded bytes; fmt is a key of OUTPUT_FORMATS (validated by the caller)."""
    buffer = io.BytesIO()
    if fmt == "png":
        image.save(buffer, format="PNG", compress_level=1)  # speed over a few % of size
    elif fmt == "jpeg":
        image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    else:
        image.save(buffer, format="WEBP", quality=quality)
    return buffer.getvalue()
