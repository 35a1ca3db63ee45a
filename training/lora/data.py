"""The LoRA job's data: a class-folder dataset (one folder per class) and a style dataset (one
folder of paintings), a seeded stratified train/validation split, seeded augmentation and the
prompt templates each example is captioned with. Unreadable images are skipped and counted
(training/images.py).
"""

import random
import zlib
from pathlib import Path
from typing import NamedTuple

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from imagelab.diffusion.animals import PROMPT_TEMPLATES
from training.images import IMAGE_SUFFIXES, load_image, scan_images, split_readable
from training.lora.config import Augmentation, LoraTrainConfig

# "a painting in the style of <token>, ...": the token names the style, the rest varies the
# subject so the LoRA learns the style rather than one caption (DreamBooth/textual-inversion use).
STYLE_TEMPLATES = (
    "a painting in the style of {token}",
    "a painting in the style of {token}, a landscape",
    "a painting in the style of {token}, a portrait",
    "a painting in the style of {token}, a city street",
    "a painting in the style of {token}, flowers in a garden",
)


class Example(NamedTuple):
    path: Path
    label: str  # the class name, or the style token
    prompts: tuple[str, ...]  # the captions it is trained with, one picked per epoch


class DatasetSplit(NamedTuple):
    train: tuple[Example, ...]
    val: tuple[Example, ...]
    labels: tuple[str, ...]
    skipped: tuple[tuple[Path, str], ...]  # (path, reason) of every unreadable image


def class_prompts(label: str) -> tuple[str, ...]:
    """The animals server's own wordings ("a photo of a lion", ...), so training captions and
    serving prompts agree."""
    name = label.replace("_", " ").replace("-", " ").strip()
    article = "an" if name[:1].lower() in "aeiou" else "a"
    return tuple(t.format(a_animal=f"{article} {name}") for t in PROMPT_TEMPLATES)


def style_prompts(token: str) -> tuple[str, ...]:
    return tuple(t.format(token=token) for t in STYLE_TEMPLATES)


def stratified_split(by_label: dict[str, list[Example]], val_fraction: float, seed: int):
    """Per label, a seeded shuffle then the first round(n * val_fraction) to validation, at
    least one when the label has two or more images, never all of them."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    train, val = [], []
    for label in sorted(by_label):
        examples = sorted(by_label[label], key=lambda e: e.path.name)
        random.Random(f"{seed}|{label}").shuffle(examples)
        n_val = round(len(examples) * val_fraction)
        if val_fraction > 0 and len(examples) >= 2:
            n_val = min(max(n_val, 1), len(examples) - 1)
        val += examples[:n_val]
        train += examples[n_val:]
    return tuple(train), tuple(val)


def class_folder_dataset(root: Path, val_fraction: float = 0.2, seed: int = 0) -> DatasetSplit:
    """`root/<class>/*.jpg|jpeg|png|webp`, one sub-folder per class."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"data_dir {root} is not a folder")
    skipped: list = []
    by_label = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        paths = split_readable(scan_images(folder), skipped)
        if paths:
            prompts = class_prompts(folder.name)
            by_label[folder.name] = [Example(p, folder.name, prompts) for p in paths]
    if not by_label:
        raise ValueError(f"{root} holds no class folders with readable {'/'.join(IMAGE_SUFFIXES)} images")
    train, val = stratified_split(by_label, val_fraction, seed)
    return DatasetSplit(train, val, tuple(sorted(by_label)), tuple(skipped))


def style_dataset(root: Path, token: str, val_fraction: float = 0.2, seed: int = 0) -> DatasetSplit:
    """A flat folder of paintings in one style, captioned with `token`."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"data_dir {root} is not a folder")
    if not token or not token.strip():
        raise ValueError("a style dataset needs a non-empty token")
    skipped: list = []
    paths = split_readable(scan_images(root), skipped)
    if not paths:
        raise ValueError(f"{root} holds no readable {'/'.join(IMAGE_SUFFIXES)} images")
    prompts = style_prompts(token)
    train, val = stratified_split({token: [Example(p, token, prompts) for p in paths]}, val_fraction, seed)
    return DatasetSplit(train, val, (token,), tuple(skipped))


def variant_seed(seed: int, example: Example, variant: int) -> int:
    return zlib.crc32(f"{seed}|{example.label}|{example.path.name}|{variant}".encode())


def augment(image: torch.Tensor, augmentation: Augmentation, seed: int) -> torch.Tensor:
    """(3, H, W) in [0, 1] -> the same, rotated/translated/scaled and brightened by parameters
    drawn from `seed`. Corners the affine uncovers take the image's mean colour, not black."""
    generator = torch.Generator().manual_seed(seed)
    uniform = lambda lo, hi: lo + (hi - lo) * float(torch.rand((), generator=generator))  # noqa: E731
    height, width = image.shape[-2:]
    a = augmentation
    angle = uniform(-a.rotation_deg, a.rotation_deg)
    translate = [
        round(uniform(-a.translate_frac, a.translate_frac) * width),
        round(uniform(-a.translate_frac, a.translate_frac) * height),
    ]
    scale = uniform(a.scale_min, a.scale_max)
    brightness = uniform(1 - a.brightness, 1 + a.brightness)
    fill = image.mean(dim=(1, 2)).tolist()
    out = TF.affine(
        image,
        angle=angle,
        translate=translate,
        scale=scale,
        shear=[0.0],
        interpolation=InterpolationMode.BILINEAR,
        fill=fill,
    )
    return TF.adjust_brightness(out, brightness).clamp(0, 1)


def prepare_pixels(
    example: Example, resolution_px: int, augmentation: Augmentation, variant: int, seed: int
) -> torch.Tensor:
    """The VAE's input for one example: (3, R, R) normalised to [-1, 1]."""
    image = load_image(example.path, resolution_px)
    if variant > 0:
        image = augment(image, augmentation, variant_seed(seed, example, variant))
    return image * 2.0 - 1.0


def pick_prompt(example: Example, epoch: int, seed: int) -> str:
    """A caption per (epoch, example), seeded, so a resumed run captions as the first did."""
    return random.Random(f"{seed}|{epoch}|{example.label}|{example.path.name}").choice(example.prompts)


def load_dataset(config: LoraTrainConfig) -> DatasetSplit:
    """The run's split: class folders or one style folder, as the config says."""
    if config.dataset == "classes":
        return class_folder_dataset(config.data_dir, config.val_fraction, config.seed)
    return style_dataset(config.data_dir, config.token, config.val_fraction, config.seed)
