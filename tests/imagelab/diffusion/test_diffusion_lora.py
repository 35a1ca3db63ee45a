"""LoRA adapters: layouts, alpha/rank scaling, per-request style and scale."""

import json

import numpy as np
import pytest
import safetensors
import safetensors.torch
import torch

from imagelab.diffusion.jobs import GenerationJob
from imagelab.diffusion.lora import read_lora, save_lora


def image(engine, style="none", style_scale=1.0, **overrides) -> np.ndarray:
    fields = dict(prompt="a photo of a lion", seed=3, width=64, height=64, steps=4)
    job = GenerationJob(style=style, style_scale=style_scale, **{**fields, **overrides})
    return np.asarray(engine.generate([job])[0].images[0]).astype(np.int16)


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


def test_style_lora_changes_the_image_visibly(engine):
    assert mean_abs_diff(image(engine, "monet"), image(engine)) > 5


def test_style_scale_zero_is_the_base_model(engine):
    np.testing.assert_array_equal(image(engine, "monet", style_scale=0.0), image(engine))


def test_style_scale_matters(engine):
    assert mean_abs_diff(image(engine, "monet", style_scale=0.5), image(engine, "monet")) > 2


def test_kohya_and_diffusers_layouts_give_the_same_image(engine):
    np.testing.assert_array_equal(image(engine, "r2_alpha16_kohya"), image(engine, "r2_alpha16"))


def test_alpha_over_rank_scaling_is_applied(engine):
    # rank 2, alpha 16 -> scale 8: the same as alpha 2 (scale 1) with up-weights times 8.
    np.testing.assert_array_equal(image(engine, "r2_alpha16"), image(engine, "r2_alpha2_up_x8"))
    assert mean_abs_diff(image(engine, "r2_alpha16"), image(engine, "r2_alpha2")) > 5


def test_base_model_is_restored_after_a_style(engine):
    before = image(engine)
    image(engine, "monet")
    image(engine, "monet", scheduler="lcm", guidance_scale=1.0)
    np.testing.assert_array_equal(image(engine), before)


def test_lcm_runs_with_the_style_adapter(engine):
    lcm_only = image(engine, scheduler="lcm", guidance_scale=1.0)
    lcm_monet = image(engine, "monet", scheduler="lcm", guidance_scale=1.0)
    assert mean_abs_diff(lcm_only, lcm_monet) > 5


def test_diffusers_layout_stores_alpha_in_lora_adapter_metadata(lora_files):
    path = lora_files["r2_alpha16"]
    with safetensors.safe_open(str(path), framework="pt") as handle:
        keys = list(handle.keys())
        config = json.loads(handle.metadata()["lora_adapter_metadata"])
    assert config["unet.r"] == 2 and config["unet.lora_alpha"] == 16
    assert all(k.startswith("unet.") and k.endswith((".lora_A.weight", ".lora_B.weight")) for k in keys)
    assert any(k.endswith("attn2.to_out.0.lora_B.weight") for k in keys)


def test_kohya_layout_keys(lora_files):
    with safetensors.safe_open(str(lora_files["r2_alpha16_kohya"]), framework="pt") as handle:
        keys = set(handle.keys())
        alpha = handle.get_tensor(next(k for k in keys if k.endswith(".alpha")))
    name = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_out_0"
    assert {f"{name}.lora_down.weight", f"{name}.lora_up.weight", f"{name}.alpha"} <= keys
    assert alpha.item() == 16


def test_read_lora_round_trip(tmp_path):
    weights = {"mid_block.attentions.0.transformer_blocks.0.attn1.to_q": (torch.randn(2, 8), torch.randn(8, 2))}
    path = save_lora(tmp_path / "x.safetensors", weights, alpha=4.0)
    loaded, alpha = read_lora(path)
    assert alpha == 4.0 and set(loaded) == set(weights)
    torch.testing.assert_close(loaded[next(iter(weights))], weights[next(iter(weights))])
    kohya = save_lora(tmp_path / "k.safetensors", weights, alpha=4.0, layout="kohya")
    with pytest.raises(ValueError, match="kohya"):
        read_lora(kohya)


def test_save_lora_rejects_mixed_ranks_and_bad_alpha(tmp_path):
    mixed = {"a.to_q": (torch.zeros(2, 4), torch.zeros(4, 2)), "a.to_k": (torch.zeros(3, 4), torch.zeros(4, 3))}
    with pytest.raises(ValueError, match="rank"):
        save_lora(tmp_path / "m.safetensors", mixed, alpha=1.0)
    with pytest.raises(ValueError, match="alpha"):
        save_lora(tmp_path / "a.safetensors", {"a.to_q": mixed["a.to_q"]}, alpha=0.0)
    with pytest.raises(ValueError, match="layout"):
        save_lora(tmp_path / "l.safetensors", {"a.to_q": mixed["a.to_q"]}, alpha=1.0, layout="a1111")


@pytest.fixture(scope="module")
def engine_with_text_encoder_lora(tiny_sd15_dir, lora_files, tmp_path_factory):
    """A kohya LoRA with text-encoder parts too, as most community style LoRAs have."""
    from imagelab.diffusion.engine import DiffusionEngine
    from imagelab.diffusion.jobs import DiffusionSettings

    tensors = safetensors.torch.load_file(str(lora_files["r2_alpha16_kohya"]))
    generator = torch.Generator().manual_seed(0)
    for layer in range(2):
        for projection in ("q_proj", "k_proj", "v_proj", "out_proj"):
            name = f"lora_te_text_model_encoder_layers_{layer}_self_attn_{projection}"
            tensors[f"{name}.lora_down.weight"] = torch.randn(2, 32, generator=generator)
            tensors[f"{name}.lora_up.weight"] = torch.randn(32, 2, generator=generator)
            tensors[f"{name}.alpha"] = torch.tensor(2.0)
    path = tmp_path_factory.mktemp("te_lora") / "with_text_encoder.safetensors"
    safetensors.torch.save_file(tensors, str(path))
    settings = DiffusionSettings(
        tiny_sd15_dir, dtype="float32", adapters={"styled": path}, lcm_adapter_path=lora_files["lcm"]
    )
    return DiffusionEngine(settings)


def test_text_encoder_lora_is_switched_off_with_its_style(engine, engine_with_text_encoder_lora):
    other = engine_with_text_encoder_lora
    assert other.pipe.get_list_adapters() == {"unet": ["styled", "lcm"], "text_encoder": ["styled"]}
    styled = image(other, "styled")
    unet_part_only = image(engine, "r2_alpha16_kohya")
    assert mean_abs_diff(styled, unet_part_only) > 1  # the text-encoder part does something
    lcm = dict(scheduler="lcm", guidance_scale=1.0)
    np.testing.assert_array_equal(image(other, **lcm), image(engine, **lcm))
    np.testing.assert_array_equal(image(other), image(engine))
