"""Tiny fixtures for the training jobs: a two-class dataset of coloured shapes drawn with
Pillow, a tiny SD 1.5 folder and a weights root of its own (tiny CLIP and VGG16 go there)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import random
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from imagelab.diffusion.tiny import synthesize_tiny_sd15


def draw_shape(path: Path, shape: str, seed: int, size=(40, 48)) -> Path:
    """A shape of a random colour on a random background, at a random place."""
    rng = random.Random(seed)
    colour = lambda: tuple(rng.randrange(256) for _ in range(3))  # noqa: E731
    image = Image.new("RGB", size, colour())
    draw = ImageDraw.Draw(image)
    x, y = rng.randrange(4, 14), rng.randrange(4, 18)
    box = (x, y, x + 22, y + 22)
    (draw.ellipse if shape == "circle" else draw.rectangle)(box, fill=colour())
    image.save(path)
    return path


def make_shapes_dataset(root: Path, per_class: int = 5, broken: int = 0) -> Path:
    """root/circle/*.png|jpg and root/square/*, plus `broken` unreadable files in circle/.
    Each image's seed comes from a checksum of its name, not `hash()`, which changes with
    PYTHONHASHSEED: the same files every run, so the tests see the same data."""
    for shape in ("circle", "square"):
        folder = root / shape
        folder.mkdir(parents=True)
        for i in range(per_class):
            draw_shape(
                folder / f"{shape}_{i}.{'png' if i % 2 else 'jpg'}",
                shape,
                seed=zlib.crc32(f"{shape}|{i}".encode()) % 1000,
            )
    for i in range(broken):
        (root / "circle" / f"broken_{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (root / "circle" / "notes.txt").write_text("not an image, not counted")
    return root


@pytest.fixture(scope="session")
def tiny_sd15(tmp_path_factory) -> Path:
    return synthesize_tiny_sd15(tmp_path_factory.mktemp("train_sd15") / "sd15", seed=0)


@pytest.fixture(scope="session")
def weights_root(tmp_path_factory, tiny_sd15) -> Path:
    """A weights root whose tiny SD 1.5 is `tiny_sd15` (a symlink, so LoRAs trained on it
    match the archive's base)."""
    root = tmp_path_factory.mktemp("train_weights")
    (root / ".tiny").mkdir()
    (root / ".tiny" / "sd15").symlink_to(tiny_sd15, target_is_directory=True)
    return root


@pytest.fixture(scope="session")
def shapes(tmp_path_factory) -> Path:
    return make_shapes_dataset(tmp_path_factory.mktemp("shapes"), per_class=5, broken=1)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Module scope, so module-scoped training runs get it too (autouse fixtures come first
    within a scope): a run and its resumed twin must reduce in the same order to compare
    bit for bit, and on a shared machine OpenMP spinning makes tiny models slower."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
