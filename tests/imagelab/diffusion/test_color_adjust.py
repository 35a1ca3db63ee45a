"""Brightness, contrast and saturation on PIL images."""

import numpy as np
import pytest
from PIL import Image

from imagelab.diffusion.adjust import ColorAdjustment, adjust_colors


@pytest.fixture
def picture() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, size=(16, 24, 3), dtype=np.uint8))


def test_factor_one_leaves_bytes_unchanged(picture):
    assert adjust_colors(picture, ColorAdjustment()).tobytes() == picture.tobytes()
    rgba = picture.convert("RGBA")
    assert adjust_colors(rgba, ColorAdjustment(1.0, 1.0, 1.0)).tobytes() == rgba.tobytes()


def test_each_factor_one_is_skipped(picture):
    only_brightness = adjust_colors(picture, ColorAdjustment(brightness=1.5))
    assert only_brightness.tobytes() != picture.tobytes()
    expected = np.clip(np.asarray(picture).astype(float) * 1.5 + 0.5, 0, 255).astype(np.uint8)
    assert np.abs(np.asarray(only_brightness).astype(int) - expected).max() <= 1


def test_extremes(picture):
    assert np.asarray(adjust_colors(picture, ColorAdjustment(brightness=0.0))).max() == 0
    grey = np.asarray(adjust_colors(picture, ColorAdjustment(saturation=0.0))).astype(int)
    assert np.abs(grey[..., 0] - grey[..., 1]).max() <= 1 and np.abs(grey[..., 1] - grey[..., 2]).max() <= 1
    flat = np.asarray(adjust_colors(picture, ColorAdjustment(contrast=0.0)))
    assert flat.std() == 0
    more_contrast = np.asarray(adjust_colors(picture, ColorAdjustment(contrast=3.0)))
    assert more_contrast.astype(float).std() > np.asarray(picture).astype(float).std()


def test_alpha_is_kept_and_input_untouched(picture):
    rgba = picture.convert("RGBA")
    rgba.putalpha(77)
    before = rgba.tobytes()
    out = adjust_colors(rgba, ColorAdjustment(contrast=2.0, saturation=0.5))
    assert out.mode == "RGBA" and np.all(np.asarray(out)[..., 3] == 77)
    assert rgba.tobytes() == before


@pytest.mark.parametrize(
    "field, value", [("contrast", -0.1), ("saturation", 3.01), ("brightness", "2"), ("brightness", float("nan"))]
)
def test_factors_are_validated(field, value):
    with pytest.raises(ValueError, match=field):
        ColorAdjustment(**{field: value})


def test_unsupported_mode():
    with pytest.raises(ValueError, match="mode"):
        adjust_colors(Image.new("CMYK", (2, 2)), ColorAdjustment(contrast=2.0))
