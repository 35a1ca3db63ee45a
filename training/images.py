"""Reading training images, shared by both jobs: which files count as images, which of them
Pillow can decode, and the resize-and-centre-crop both jobs train on.

Unreadable images are skipped and counted, never fatal: a scraped dataset always holds a few
truncated or mislabelled files, and one of them must not end a run hours in.
"""

from pathlib import Path

import torch
from PIL import Image, ImageOps
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def scan_images(folder: Path, recursive: bool = False) -> list[Path]:
    """Image files in `folder` (or under it, with `recursive`), suffix case-insensitive, sorted."""
    entries = Path(folder).rglob("*") if recursive else Path(folder).iterdir()
    return sorted(p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def unreadable_reason(path: Path) -> str | None:
    """None if Pillow decodes the whole image, else why not."""
    try:
        with Image.open(path) as image:
            image.convert("RGB").load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        return f"{type(error).__name__}: {error}"
    return None


def split_readable(paths: list[Path], skipped: list) -> list[Path]:
    """The paths Pillow can decode; each other one is appended to `skipped` as (path, reason)."""
    kept = []
    for path in paths:
        reason = unreadable_reason(path)
        if reason is None:
            kept.append(path)
        else:
            skipped.append((path, reason))
    return kept


def load_image(path: Path, resolution_px: int) -> torch.Tensor:
    """Shorter side to `resolution_px`, centre crop -> (3, R, R) float in [0, 1]."""
    with Image.open(path) as opened:
        image = ImageOps.exif_transpose(opened).convert("RGB")
    image = TF.resize(image, resolution_px, interpolation=InterpolationMode.BICUBIC, antialias=True)
    image = TF.center_crop(image, [resolution_px, resolution_px])
    return TF.to_tensor(image)
