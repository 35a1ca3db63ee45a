"""PIL <-> tensor conversion and resizing for the style transfer core."""

import numpy as np
import torch
from PIL import Image

from imagelab.validation import InvalidValue

# Four 2x2 pools lie before conv5_1, so each side needs 16 px to leave one feature pixel.
MIN_SIDE_PX = 16


def check_rgb_image(name: str, image: object) -> Image.Image:
    if not isinstance(image, Image.Image):
        raise ValueError(f"{name} must be a PIL image, got {type(image).__name__}")
    if image.mode != "RGB":
        raise ValueError(f"{name} must be an RGB image, got mode {image.mode!r}")
    return image


def fitted_size(name: str, size: tuple, max_side_px: int) -> tuple:
    """(width, height) with the longest side exactly max_side_px, keeping the aspect; an
    InvalidValue naming `name` if a side would come out under MIN_SIDE_PX."""
    width, height = size
    scale = max_side_px / max(width, height)
    fitted = (max(1, round(width * scale)), max(1, round(height * scale)))
    if min(fitted) < MIN_SIDE_PX:
        raise InvalidValue(
            name,
            f"{name} is too elongated: at max_side_px={max_side_px} it would be {fitted[0]}x{fitted[1]} "
            f"px, and each side must be at least {MIN_SIDE_PX} px",
        )
    return fitted


def resize_to_max_side(name: str, image: Image.Image, max_side_px: int) -> Image.Image:
    """Resize (up or down) so the longest side is exactly max_side_px, keeping the aspect."""
    size = fitted_size(name, image.size, max_side_px)
    if size == image.size:
        return image
    return image.resize(size, Image.Resampling.LANCZOS)


def pil_to_tensor(image: Image.Image, device: torch.device | str = "cpu") -> torch.Tensor:
    """RGB PIL image -> (1, 3, H, W) float32 in [0, 1]."""
    pixels = torch.from_numpy(np.array(image, dtype=np.uint8))  # (H, W, 3), a writable copy
    image = pixels.permute(2, 0, 1).unsqueeze(0).to(device=device, dtype=torch.float32) / 255.0
    return image.contiguous()  # (1, 3, H, W); optimisers flatten grads with view()


def tensor_to_pil(image: torch.Tensor) -> Image.Image:
    """(1, 3, H, W) in [0, 1] -> RGB PIL image, rounding to the nearest 8-bit value."""
    pixels = (image.detach()[0].clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)  # (3, H, W)
    return Image.fromarray(pixels.permute(1, 2, 0).cpu().numpy())
