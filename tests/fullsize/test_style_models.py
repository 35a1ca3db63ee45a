"""neural_style over a full-size torchvision VGG19 and fast_style with pytorch/examples-format
TransformerNets (.pth with stale InstanceNorm statistics), at 64 px."""

import math

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from imagelab.fast_style.stylize import batch_to_images, images_to_batch, stylize
from imagelab.fast_style.weights import load_transformer_net
from imagelab.neural_style import NeuralStyleConfig, load_vgg19_features, transfer
from imagelab.neural_style.vgg import VGG19_CFG, infer_vgg_widths
from imagelab.weights_io import read_state_dict

pytestmark = pytest.mark.fullsize

SIDE_PX = 64


@pytest.fixture(scope="module")
def chelsea() -> Image.Image:
    return Image.fromarray(skimage.data.chelsea())


def test_the_vgg19_file_is_torchvisions_full_network(full_size):
    state_dict = read_state_dict(full_size.vgg19)
    assert infer_vgg_widths(state_dict, VGG19_CFG) == [64, 64, 128, 128, 256, 256, 256, 256] + [512] * 8
    assert state_dict["classifier.0.weight"].shape == (4096, 512 * 7 * 7)  # carried, then ignored
    assert sum(t.numel() for t in state_dict.values()) == 143_667_240  # torchvision's vgg19


def test_neural_style_on_the_full_vgg19_descends(full_size, chelsea, assert_visible):
    features = load_vgg19_features(full_size.vgg19)
    brick = Image.fromarray(skimage.data.brick()).convert("RGB")
    content = chelsea.resize((SIDE_PX, SIDE_PX))
    result = transfer(content, brick, NeuralStyleConfig(steps=8, max_side_px=SIDE_PX), features)
    assert (result.steps_done, result.truncated) == (8, False)
    assert all(math.isfinite(loss) for loss in result.loss_history)
    assert min(result.loss_history) < result.loss_history[0]
    assert_visible(result.image)


@pytest.mark.parametrize("style", ["candy", "mosaic"])
def test_fast_style_loads_examples_checkpoints_and_stylises(full_size, chelsea, style, assert_visible):
    path = full_size.fast_style(style)
    assert any("running_mean" in key for key in torch.load(path, weights_only=True))  # like candy.pth
    model = load_transformer_net(path)
    content = chelsea.resize((SIDE_PX, SIDE_PX))
    (styled,) = batch_to_images(stylize(model, images_to_batch([content])))
    assert_visible(styled)
    assert np.abs(np.asarray(styled, dtype=int) - np.asarray(content, dtype=int)).mean() > 5.0
