import time

import numpy as np
import pytest
import torch
from PIL import Image

from imagelab.neural_style import GatysLoss, NeuralStyleConfig, transfer
from imagelab.neural_style.color import rgb_to_ycbcr
from imagelab.neural_style.images import pil_to_tensor, resize_to_max_side

SIDE_PX = 96


def measured_losses(features, image, content, style_image, config):
    """Content and style loss of `image` against the targets transfer() builds for `config`."""
    content_t = pil_to_tensor(resize_to_max_side("content", content, config.max_side_px))
    style_t = pil_to_tensor(resize_to_max_side("style_image", style_image, config.max_side_px))
    image_t = pil_to_tensor(image.resize(content_t.shape[:-3:-1], Image.Resampling.LANCZOS))
    terms = GatysLoss(features, content_t, style_t, config.pooling)(image_t)
    return terms.content.item(), terms.style.item()


def chroma(image: Image.Image) -> torch.Tensor:
    return rgb_to_ycbcr(pil_to_tensor(image))[:, 1:]  # (1, 2, H, W) Cb, Cr


@pytest.fixture(scope="module")
def cat_as_brick(tiny_features, chelsea, brick):
    config = NeuralStyleConfig(steps=60, max_side_px=SIDE_PX)
    calls = []
    result = transfer(chelsea, brick, config, tiny_features, on_step=lambda *args: calls.append(args))
    return config, result, calls


def test_output_has_content_aspect_and_requested_size(cat_as_brick, chelsea):
    _, result, _ = cat_as_brick
    assert result.image.mode == "RGB"
    assert result.image.size == (SIDE_PX, round(SIDE_PX * chelsea.height / chelsea.width))
    assert (result.steps_done, result.truncated) == (60, False)


def test_output_takes_the_style_and_keeps_the_content(cat_as_brick, tiny_features, chelsea, brick):
    config, result, _ = cat_as_brick
    out_content, out_style = measured_losses(tiny_features, result.image, chelsea, brick, config)
    _, content_style = measured_losses(tiny_features, chelsea, chelsea, brick, config)
    style_content, _ = measured_losses(tiny_features, brick, chelsea, brick, config)
    assert out_style < 0.05 * content_style
    assert out_content < 0.8 * style_content
    # The reported losses are those of the returned image (up to 8-bit rounding).
    assert result.style_loss == pytest.approx(out_style, rel=0.2, abs=0.01)
    assert result.content_loss == pytest.approx(out_content, rel=0.2, abs=0.01)


def test_losses_fall_and_on_step_reports_every_step_in_order(cat_as_brick):
    config, result, calls = cat_as_brick
    assert [call[:2] for call in calls] == [(step, 60) for step in range(1, 61)]
    history = result.loss_history
    assert len(history) == 60
    assert max(history[-10:]) < 0.2 * history[0]
    assert np.mean(history[30:40]) > np.mean(history[50:60])
    styles = [call[3] for call in calls]
    assert styles[-1] < 0.1 * styles[0]
    weighted = config.content_weight * result.content_loss + config.style_weight * result.style_loss
    assert weighted <= min(history) + 1e-6  # the best image is returned, not the last one


def test_same_seed_gives_identical_bytes(tiny_features, astronaut, grass):
    config = NeuralStyleConfig(steps=8, max_side_px=64, init="noise", seed=7)
    first = transfer(astronaut, grass, config, tiny_features).image.tobytes()
    second = transfer(astronaut, grass, config, tiny_features).image.tobytes()
    other_seed = NeuralStyleConfig(steps=8, max_side_px=64, init="noise", seed=8)
    third = transfer(astronaut, grass, other_seed, tiny_features).image.tobytes()
    assert first == second
    assert first != third


def test_golden_slice(tiny_features, chelsea, grass):
    # Few steps, so float differences between CPUs stay within the 8-bit tolerance.
    config = NeuralStyleConfig(steps=5, max_side_px=64)
    image = transfer(chelsea, grass, config, tiny_features).image
    pixels = np.asarray(image)[20:23, 30:33, 0].astype(int)  # (3, 3) of the red channel
    expected = np.array(GOLDEN_SLICE)
    assert np.abs(pixels - expected).max() <= 2, pixels.tolist()


# Measured on an AVX-512 CPU, torch 2.14; the content's own pixels there are
# [[105, 177, 190], [94, 167, 194], [84, 160, 189]], so five steps already moved them.
GOLDEN_SLICE = [[95, 141, 174], [69, 134, 168], [59, 128, 174]]


def test_preserve_color_keeps_content_chroma(tiny_features, astronaut, coffee):
    plain = NeuralStyleConfig(steps=30, max_side_px=64)
    kept = NeuralStyleConfig(steps=30, max_side_px=64, preserve_color=True)
    content_chroma = chroma(resize_to_max_side("content", astronaut, 64))
    plain_error = (chroma(transfer(astronaut, coffee, plain, tiny_features).image) - content_chroma).abs().mean()
    kept_error = (chroma(transfer(astronaut, coffee, kept, tiny_features).image) - content_chroma).abs().mean()
    assert kept_error < 0.01
    assert kept_error < 0.2 * plain_error


def test_time_budget_returns_best_image_so_far(tiny_features, chelsea, brick):
    config = NeuralStyleConfig(steps=1000, max_side_px=64, time_budget_s=1e-6)
    result = transfer(chelsea, brick, config, tiny_features)
    assert result.truncated
    assert result.steps_done == 1
    assert result.image.size == (64, 43)
    config = NeuralStyleConfig(steps=1000, max_side_px=64)
    past = transfer(chelsea, brick, config, tiny_features, deadline_s=time.monotonic())
    assert past.truncated and past.steps_done == 1


def test_runs_inside_inference_mode(tiny_vgg19_path, chelsea, grass):
    from imagelab.neural_style import load_vgg19_features

    with torch.inference_mode():
        features = load_vgg19_features(tiny_vgg19_path)
        result = transfer(chelsea, grass, NeuralStyleConfig(steps=10, max_side_px=64), features)
    assert result.steps_done == 10
    assert result.loss_history[-1] < result.loss_history[0]


def test_adam_also_descends(tiny_features, chelsea, brick):
    config = NeuralStyleConfig(steps=20, max_side_px=64, optimizer="adam", adam_learning_rate=0.05)
    result = transfer(chelsea, brick, config, tiny_features)
    assert result.loss_history[-1] < 0.5 * result.loss_history[0]


def test_invalid_images_raise_value_error_naming_the_field(tiny_features, chelsea):
    config = NeuralStyleConfig(steps=1, max_side_px=64)
    with pytest.raises(ValueError, match="content must be a PIL image"):
        transfer(np.zeros((8, 8, 3)), chelsea, config, tiny_features)
    with pytest.raises(ValueError, match="style_image must be an RGB image"):
        transfer(chelsea, chelsea.convert("L"), config, tiny_features)
    with pytest.raises(ValueError, match="content is too elongated"):
        transfer(Image.new("RGB", (400, 40)), chelsea, config, tiny_features)
