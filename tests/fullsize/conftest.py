"""The full-size tier (marker `fullsize`): every model at its real size with random weights, from
the shared cache weightstore/full_size.py builds once (~7 GB in $IMAGELAB_FULLSIZE_CACHE,
default ~/.cache/imagelab/fullsize). Images stay small (64 px): the cost is in the pixels, not
the weights. A module holds at most one full-size pipeline at a time and frees it at its end."""

import numpy as np
import pytest

from weightstore.full_size import FullSizeWeights, ensure_full_size_weights


@pytest.fixture(scope="session")
def full_size() -> FullSizeWeights:
    return ensure_full_size_weights()


def _assert_visible(image, size_px: int = 64) -> None:
    """A NaN or an overflow comes out of the pipeline as a black, white or flat picture."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    assert image.size == (size_px, size_px)
    assert 10.0 < pixels.mean() < 245.0, f"mean level {pixels.mean():.1f}: a black or white image"
    assert pixels.std() > 5.0, f"level std {pixels.std():.2f}: a flat image"


@pytest.fixture(scope="session")
def assert_visible():
    return _assert_visible
