"""Shared fixtures: a tiny VGG19 synthesised once per session, and real photographs and
textures from scikit-image's wheel."""

import os

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skimage_data

from imagelab.neural_style import load_vgg19_features, synthesize_tiny_vgg19

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    # Results are compared bit for bit; one thread also keeps the shared CPU free.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_vgg19_path(tmp_path_factory):
    return synthesize_tiny_vgg19(tmp_path_factory.mktemp("vgg19") / "tiny_vgg19.safetensors", seed=0)


@pytest.fixture(scope="session")
def tiny_features(tiny_vgg19_path):
    return load_vgg19_features(tiny_vgg19_path, device="cpu")


def _rgb(pixels: np.ndarray) -> Image.Image:
    return Image.fromarray(pixels).convert("RGB")


@pytest.fixture(scope="session")
def chelsea():
    return _rgb(skimage_data.chelsea())  # 451x300 photograph of a cat


@pytest.fixture(scope="session")
def astronaut():
    return _rgb(skimage_data.astronaut())  # 512x512 photograph


@pytest.fixture(scope="session")
def coffee():
    return _rgb(skimage_data.coffee())  # 600x400 photograph, warm reds and browns


@pytest.fixture(scope="session")
def brick():
    return _rgb(skimage_data.brick())  # 512x512 greyscale texture


@pytest.fixture(scope="session")
def grass():
    return _rgb(skimage_data.grass())  # 512x512 greyscale texture
