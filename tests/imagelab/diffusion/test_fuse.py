"""Fused LoRA (weights folded in per group) gives the unfused image, and swaps back exactly."""

import numpy as np
import pytest
import torch

from imagelab.diffusion.engine import DiffusionEngine
from imagelab.diffusion.jobs import DiffusionSettings, GenerationJob

TINY = dict(width=64, height=64, steps=2)


def make_engine(tiny_sd15_dir, lora_files, fuse_lora, dtype="float32"):
    adapters = {"monet": lora_files["monet"], "r2_alpha16": lora_files["r2_alpha16"]}
    settings = DiffusionSettings(
        tiny_sd15_dir, dtype=dtype, adapters=adapters, lcm_adapter_path=lora_files["lcm"], fuse_lora=fuse_lora
    )
    return DiffusionEngine(settings)


@pytest.fixture(scope="module")
def fused(tiny_sd15_dir, lora_files):
    return make_engine(tiny_sd15_dir, lora_files, fuse_lora=True)


@pytest.fixture(scope="module")
def unfused(tiny_sd15_dir, lora_files):
    return make_engine(tiny_sd15_dir, lora_files, fuse_lora=False)


def image(engine, **overrides) -> np.ndarray:
    job = GenerationJob("a lighthouse", seed=3, **{**TINY, **overrides})
    [result] = engine.generate([job])
    return np.asarray(result.images[0]).astype(np.int16)


@pytest.mark.parametrize(
    "overrides",
    [
        dict(style="monet"),
        dict(style="r2_alpha16", style_scale=0.5),
        dict(style="monet", scheduler="lcm", guidance_scale=1.0),  # style and LCM-LoRA together
    ],
    ids=["monet", "half_scale", "monet_lcm"],
)
def test_fused_image_equals_the_unfused_image_within_rounding(fused, unfused, overrides):
    difference = np.abs(image(fused, **overrides) - image(unfused, **overrides))
    assert difference.max() <= 1  # float32 sums in another order: a level, never more


def test_styles_still_differ_when_fused(fused):
    assert not np.array_equal(image(fused, style="monet"), image(fused))


def test_swapping_back_to_no_style_restores_the_base_weights_exactly(fused):
    before = image(fused)
    fused.generate([GenerationJob("x", style="monet", seed=1, **TINY)])
    assert fused.fuser.fused is not None and fused.fuser.last_swap_s > 0
    [result] = fused.generate([GenerationJob("a lighthouse", seed=3, **TINY)])
    assert fused.fuser.fused is None and "adapter_swap" in result.timings_ms
    np.testing.assert_array_equal(np.asarray(result.images[0]).astype(np.int16), before)


def test_the_same_adapters_twice_do_not_swap_again(fused):
    fused.generate([GenerationJob("x", style="monet", seed=1, **TINY)])
    swaps = fused.fuser.swaps
    [result] = fused.generate([GenerationJob("y", style="monet", seed=2, **TINY)])
    assert fused.fuser.swaps == swaps and result.timings_ms["adapter_swap"] == 0.0


def test_bf16_fused_unet_matches_unfused_within_bf16_rounding(tiny_sd15_dir, lora_files):
    outputs = {}
    for fuse_lora in (True, False):
        engine = make_engine(tiny_sd15_dir, lora_files, fuse_lora, dtype="bfloat16")
        engine._activate_adapters(engine_key(style="monet"))
        unet = engine.pipe.unet
        generator = torch.Generator().manual_seed(0)
        sample = torch.randn((1, 4, 32, 32), generator=generator).to(torch.bfloat16)
        context = torch.randn((1, 77, 32), generator=generator).to(torch.bfloat16)
        with torch.inference_mode():
            outputs[fuse_lora] = unet(sample, torch.tensor([500]), context, return_dict=False)[0].float()
    scale = outputs[False].abs().max()
    # bf16 keeps 8 mantissa bits: a relative 2**-8 per rounding; a few roundings deep, 3 % bound.
    assert (outputs[True] - outputs[False]).abs().max() <= 0.03 * scale


def engine_key(**overrides):
    from imagelab.diffusion.jobs import group_key

    return group_key(GenerationJob("x", **{**TINY, **overrides}))
