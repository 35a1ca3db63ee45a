"""Mixed-style batches on the full-size SD 1.5 UNet (bf16, the dtype `auto` serves on this CPU).

At full size with random weights and this strong LoRA (alpha / r = 8) the UNet is chaotic
(test_speed_paths.py: a 1e-6 change of one layer's weights moves the output by half its range),
so whole-UNet outputs cannot show rounding-level agreement between the mixed rows and the
fused weights a run alone uses; each adapted layer's rows can, and do here. End to end at
64 px: one call for three styles, and the `none` row is the exact base image.
"""

import dataclasses
import gc

import numpy as np
import pytest
import torch

from imagelab.diffusion.engine import DiffusionEngine
from imagelab.diffusion.jobs import DiffusionSettings, GenerationJob
from imagelab.diffusion.mixed_lora import MixedLoraRows

pytestmark = pytest.mark.fullsize
SMALL = {"steps": 2, "width": 64, "height": 64, "scheduler": "ddim", "seed": 4}
ROW_ADAPTERS = [(("style", 1.0),), (), (("style", 0.5),)]


@pytest.fixture(scope="module")
def engine(full_size):
    settings = DiffusionSettings(
        full_size.sd15_fp16, dtype="bfloat16", adapters={"style": full_size.lora("diffusers")}, mixed_style_batches="on"
    )
    engine = DiffusionEngine(settings)
    yield engine
    del engine
    gc.collect()  # one full-size pipeline at a time


def test_each_adapted_layer_gives_each_row_its_own_lora_within_bf16_rounding(engine):
    """Rows in three styles (the style, none, the style at half scale) through every adapted
    layer at once, against float32 `W x + s B A x` per row from the kept base weights."""
    engine.fuser.restore()
    engine.pipe.unet.disable_lora()
    mixed = MixedLoraRows(engine.pipe.unet, ROW_ADAPTERS)
    assert len(mixed.layers) == 128
    generator = torch.Generator().manual_seed(0)
    worst = 0.0
    with torch.inference_mode(), mixed.active():
        mixed.select_rows(torch.arange(3))
        for layer in mixed.layers:
            linear = layer.get_base_layer()
            x = torch.randn((3, linear.in_features), generator=generator)
            rows = layer(x.to(linear.weight.dtype)).float()
            bias = None if linear.bias is None else linear.bias.float()
            base = torch.nn.functional.linear(x, engine.fuser._base[id(layer)].float(), bias)
            down, up = layer.lora_A["style"].weight.float(), layer.lora_B["style"].weight.float()
            unit = layer.lora_alpha["style"] / layer.r["style"]
            for row, scale in enumerate((1.0, 0.0, 0.5)):
                want = base[row] + (x[row] @ down.T @ up.T) * unit * scale
                worst = max(worst, ((rows[row] - want).abs().max() / want.abs().max()).item())
    assert worst <= 0.02  # bf16: 8 mantissa bits for the weights and the input, float32 sums


def test_three_styles_in_one_call_and_the_none_row_is_the_exact_base_image(engine, assert_visible):
    jobs = [GenerationJob("a lion in the grass", style=style, style_scale=scale, **SMALL) for style, scale in
            (("style", 1.0), ("none", 1.0), ("style", 0.5))]  # fmt: skip
    results = engine.generate(jobs)
    assert [(r.batch_images, r.batch_styles, r.unet_calls) for r in results] == [(3, 3, 2 * 3)] * 3
    for result in results:
        assert_visible(result.images[0])
    styled, base, half = (np.asarray(r.images[0]).astype(np.int16) for r in results)
    assert np.abs(styled - base).max() > 20 and np.abs(half - base).max() > 20
    apart = dataclasses.replace(engine.settings, mixed_style_batches="off")
    engine.settings, mixing = apart, engine.settings
    try:
        [alone] = engine.generate([jobs[1]])
    finally:
        engine.settings = mixing
    np.testing.assert_array_equal(np.asarray(alone.images[0]).astype(np.int16), base)
