"""How close a fast path's picture stays to the fp32 reference: PSNR over 8-bit RGB pixels."""

import math

import numpy as np
from PIL import Image


def psnr_db(image: Image.Image, reference: Image.Image) -> float:
    """Peak signal-to-noise ratio of `image` against `reference` (same size, RGB, peak 255), in
    dB; infinite for identical pixels. 35 dB is issue 16's bound for a bf16 TransformerNet."""
    if image.size != reference.size:
        raise ValueError(f"sizes differ: {image.size} against {reference.size}")
    a = np.asarray(image.convert("RGB"), dtype=np.float64)
    b = np.asarray(reference.convert("RGB"), dtype=np.float64)
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)
