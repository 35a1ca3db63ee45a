"""The fast-style job's data: content images (any readable image under a folder, COCO-style
flat or in class folders), drawn in a seeded order per epoch, and the one style image."""

from pathlib import Path
from typing import NamedTuple

import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from training.checkpoints import epoch_order
from training.images import IMAGE_SUFFIXES, load_image, scan_images, split_readable, unreadable_reason


class ContentImages(NamedTuple):
    paths: tuple[Path, ...]
    skipped: tuple[tuple[Path, str], ...]  # (path, reason) of every unreadable image


def content_images(folder: Path) -> ContentImages:
    """Every readable image under `folder`, searched recursively."""
    if not Path(folder).is_dir():
        raise ValueError(f"content_dir {folder} is not a folder")
    skipped: list = []
    paths = split_readable(scan_images(folder, recursive=True), skipped)
    if not paths:
        raise ValueError(f"{folder} holds no readable {'/'.join(IMAGE_SUFFIXES)} images")
    return ContentImages(tuple(paths), tuple(skipped))


def content_batch(images: ContentImages, step: int, batch_size: int, image_size_px: int, seed: int) -> torch.Tensor:
    """Optimizer step `step`'s batch: (B, 3, S, S) RGB in 0-255, as pytorch/examples feeds
    TransformerNet. Its images depend only on (seed, step), so a resumed run sees the same."""
    batches_per_epoch = -(-len(images.paths) // batch_size)
    epoch, position = divmod(step, batches_per_epoch)
    order = epoch_order(len(images.paths), seed, epoch)
    chosen = order[position * batch_size : (position + 1) * batch_size]
    return torch.stack([load_image(images.paths[i], image_size_px) * 255.0 for i in chosen])


def load_style_image(path: Path, size_px: int | None) -> torch.Tensor:
    """The style image as (1, 3, H, W) RGB in 0-255; shorter side to `size_px` when given."""
    if unreadable_reason(path) is not None:
        raise ValueError(f"style_image {path} is not a readable image")
    with Image.open(path) as opened:
        image = opened.convert("RGB")
    if size_px:
        image = TF.resize(image, size_px, interpolation=InterpolationMode.BICUBIC, antialias=True)
    return TF.to_tensor(image)[None] * 255.0
