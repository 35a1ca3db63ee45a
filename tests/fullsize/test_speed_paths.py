"""The speed paths at SD 1.5's real size (64 px images): the fused LoRA computes what the
unfused adapter layers compute, within bf16's rounding, and decoder=fast decodes real latents."""

import gc

import numpy as np
import pytest
import torch

from imagelab.diffusion.engine import DiffusionEngine
from imagelab.diffusion.jobs import DiffusionSettings, GenerationJob, group_key

pytestmark = pytest.mark.fullsize

SMALL = {"steps": 2, "width": 64, "height": 64, "scheduler": "ddim", "seed": 11}


@pytest.fixture(scope="module")
def engine(full_size):
    settings = DiffusionSettings(full_size.sd15_fp16, dtype="bfloat16", adapters={"style": full_size.lora("diffusers")})
    engine = DiffusionEngine(settings)
    yield engine
    del engine
    gc.collect()  # one full-size pipeline at a time


def test_fused_lora_layers_compute_what_the_unfused_layers_compute_within_bf16_rounding(engine):
    """Layer by layer: at full size with random weights and this strong LoRA (alpha / r = 8) the
    UNet is chaotic (measured: one layer's weights scaled by 1 + 1e-6 move the float32 output by
    0.47 of its 0.93 range), so whole-UNet outputs cannot show rounding-level agreement; each
    adapted layer's output can. The reference is PEFT's unfused sum from the kept base weights
    in float32; the fused layer runs in the served bf16."""
    engine._activate_adapters(group_key(GenerationJob("x", style="style", **SMALL)))
    fuser = engine.fuser
    assert fuser.fused is not None and fuser.last_swap_s > 0 and len(fuser.layers) == 128
    generator = torch.Generator().manual_seed(0)
    worst = 0.0
    with torch.inference_mode():
        for layer in fuser.layers:
            linear = layer.get_base_layer()
            x = torch.randn((4, linear.in_features), generator=generator)
            bias = None if linear.bias is None else linear.bias.float()
            base = torch.nn.functional.linear(x, fuser._base[id(layer)].float(), bias)
            down, up = layer.lora_A["style"].weight.float(), layer.lora_B["style"].weight.float()
            unfused = base + (x @ down.T @ up.T) * layer.scaling["style"]
            fused = linear(x.to(linear.weight.dtype)).float()
            worst = max(worst, ((fused - unfused).abs().max() / unfused.abs().max()).item())
    assert worst <= 0.02  # bf16: 8 mantissa bits for the weights and the input, float32 sums
    engine.pipe.disable_lora()
    fuser.restore()


def test_decoder_fast_decodes_at_the_real_size(engine):
    """The stand-in TAESD has random weights, so its picture is dark, not calibrated: the check
    is that real-size latents go through it to an image of the asked size with structure."""
    [result] = engine.generate([GenerationJob("a lion in the grass", decoder="fast", **SMALL)])
    pixels = np.asarray(result.images[0].convert("RGB"), dtype=np.float64)
    assert result.images[0].size == (64, 64) and pixels.std() > 1.0
    assert engine.decoders.synthetic  # no TAESD weights in the cache: the stand-in's architecture
