"""Mixed-style batches (mixed_lora.py): jobs differing only in style share one pipeline call,
and each job's images equal the same job run alone within rounding.

"Alone" is the job in its own group with PEFT's unfused adapter layers (fuse_lora false): the
mixed rows compute the same `W x + s B (A x)`, so with batch_invariant they are bit-identical
to it. The served default fuses (fuse.py); fused and unfused differ by float rounding, which
the tiny model's strong LoRAs (alpha / r = 8) amplify to up to 10 levels after 3 steps, so
against the fused weights the comparison is made on one UNet call (the last test here)."""

import json

import numpy as np
import pytest
import safetensors
import safetensors.torch
import torch
from transformers import CLIPTextConfig

from imagelab.diffusion.engine import DiffusionEngine
from imagelab.diffusion.jobs import ANY_STYLE, DiffusionSettings, GenerationJob, GenerationResult, group_jobs
from imagelab.diffusion.mixed_lora import MixedLoraRows

TINY = dict(width=64, height=64, steps=3)
STEPS = TINY["steps"]
# Four styles (adapter sets) over five images: a style at two scales, another style, none.
MIXED_JOBS = [
    GenerationJob("a lighthouse", style="monet", seed=1, **TINY),
    GenerationJob("a lighthouse", seed=1, **TINY),
    GenerationJob("a harbour", style="r2_alpha2", style_scale=0.5, seed=3, **TINY),
    GenerationJob("a lighthouse", style="monet", style_scale=0.3, seed=1, num_images=2, **TINY),
]
LCM = dict(scheduler="lcm", guidance_scale=1.0)
LCM_JOBS = [
    GenerationJob("a fox", style="monet", seed=5, **LCM, **TINY),
    GenerationJob("a fox", seed=5, **LCM, **TINY),
]


def make_engine(tiny_sd15_dir, lora_files, dtype="float32", **settings):
    adapters = {name: lora_files[name] for name in ("monet", "r2_alpha2", "r2_alpha16")}
    return DiffusionEngine(
        DiffusionSettings(tiny_sd15_dir, dtype=dtype, adapters=adapters, lcm_adapter_path=lora_files["lcm"], **settings)
    )


@pytest.fixture(scope="module")
def alone(tiny_sd15_dir, lora_files):
    """The reference: each style its own group, through PEFT's own unfused LoRA layers."""
    return make_engine(tiny_sd15_dir, lora_files, fuse_lora=False)


@pytest.fixture(scope="module", params=[True, False], ids=["batch_invariant", "one_unet_call"])
def mixing(request, tiny_sd15_dir, lora_files):
    return make_engine(tiny_sd15_dir, lora_files, batch_invariant=request.param, mixed_style_batches="on")


def pixels(image) -> np.ndarray:
    return np.asarray(image).astype(np.int16)


def run_alone(engine, job) -> list[np.ndarray]:
    [result] = engine.generate([job])
    assert result.batch_styles == 0  # one style: one group, as without mixing
    return [pixels(image) for image in result.images]


def test_jobs_differing_only_in_style_group_together_when_mixing():
    jobs = [*MIXED_JOBS, GenerationJob("x", steps=4, width=64, height=64)]
    assert list(group_jobs(jobs).values()) == [[0], [1], [2], [3], [4]]
    mixed = group_jobs(jobs, mix_styles=True)
    assert list(mixed.values()) == [[0, 1, 2, 3], [4]]  # other steps: another call
    assert all(key.style == ANY_STYLE and key.style_scale == 0.0 for key in mixed)


@pytest.mark.parametrize(
    "batch_invariant, mode, mixes",
    [(True, "auto", False), (False, "auto", True), (True, "on", True), (False, "off", False)],
)
def test_the_setting_decides_when_styles_mix(tiny_sd15_dir, batch_invariant, mode, mixes):
    settings = DiffusionSettings(tiny_sd15_dir, batch_invariant=batch_invariant, mixed_style_batches=mode)
    assert settings.mixes_styles is mixes


def test_bad_settings_are_refused_naming_the_field(tiny_sd15_dir):
    with pytest.raises(ValueError, match="mixed_style_batches"):
        DiffusionSettings(tiny_sd15_dir, mixed_style_batches="sometimes")


def test_a_mixed_batch_is_one_pipeline_call_and_each_row_equals_its_job_alone(mixing, alone):
    results = mixing.generate(MIXED_JOBS)
    invariant = mixing.settings.batch_invariant
    for job, result in zip(MIXED_JOBS, results):
        assert result.batch_images == 5 and result.batch_styles == 4
        # batch_invariant: one UNet call per image and step; else one per step for all rows
        assert result.unet_calls == STEPS * (5 if invariant else 1)
        for mixed_image, alone_image in zip(result.images, run_alone(alone, job)):
            if invariant:  # the same ops on the same rows as alone
                np.testing.assert_array_equal(pixels(mixed_image), alone_image)
            else:  # one call for all rows: the batch-size rounding of batching.py (fp32)
                assert np.abs(pixels(mixed_image) - alone_image).max() <= 2


def test_styles_and_scales_still_differ_inside_one_call(mixing):
    styled, base, _, weaker = mixing.generate(MIXED_JOBS)
    # the same prompt and seed: only the row's adapters differ
    assert np.abs(pixels(styled.images[0]) - pixels(base.images[0])).max() > 20
    assert np.abs(pixels(styled.images[0]) - pixels(weaker.images[0])).max() > 10


def test_none_rows_are_the_exact_base_model_when_batch_invariant(tiny_sd15_dir, lora_files, alone):
    engine = make_engine(tiny_sd15_dir, lora_files, mixed_style_batches="on")
    results = engine.generate(MIXED_JOBS)
    assert results[1].batch_styles == 4
    np.testing.assert_array_equal(pixels(results[1].images[0]), run_alone(alone, MIXED_JOBS[1])[0])


def test_the_lcm_lora_joins_each_rows_style(mixing, alone):
    results = mixing.generate(LCM_JOBS)
    for job, result in zip(LCM_JOBS, results):
        assert result.batch_styles == 2 and result.batch_images == 2
        assert np.abs(pixels(result.images[0]) - run_alone(alone, job)[0]).max() <= 2


def test_the_weights_stay_unfused_during_a_mixed_call_and_fuse_again_after(tiny_sd15_dir, lora_files, alone):
    engine = make_engine(tiny_sd15_dir, lora_files, batch_invariant=False, mixed_style_batches="on")
    [before] = engine.generate([MIXED_JOBS[0]])  # fused monet
    assert engine.fuser.fused is not None
    seen = []
    engine.generate(MIXED_JOBS, on_step=lambda *_: seen.append(engine.fuser.fused))
    assert seen and all(fused is None for fused in seen)
    [after] = engine.generate([MIXED_JOBS[0]])
    assert engine.fuser.fused is not None and after.batch_styles == 0
    np.testing.assert_array_equal(pixels(after.images[0]), pixels(before.images[0]))


def test_jobs_of_one_style_keep_the_fused_path(mixing):
    jobs = [GenerationJob("a", style="monet", seed=s, **TINY) for s in (1, 2)]
    results = mixing.generate(jobs)
    assert [r.batch_images for r in results] == [2, 2] and [r.batch_styles for r in results] == [0, 0]
    assert mixing.fuser.fused is not None


def test_each_prompt_is_encoded_under_its_own_styles_text_encoder_lora(tiny_sd15_dir, lora_files, tmp_path):
    """A LoRA with text-encoder layers: a mixed call must encode each job's prompt under its own
    style's adapters, as a run alone does, not under its neighbour's."""
    text_lora = with_text_encoder_layers(lora_files["monet"], tiny_sd15_dir, tmp_path / "text.safetensors")
    settings = dict(dtype="float32", batch_invariant=True)
    adapters = {"monet": lora_files["monet"], "text": text_lora}  # same UNet factors, and a text part
    mixing = DiffusionEngine(DiffusionSettings(tiny_sd15_dir, adapters=adapters, mixed_style_batches="on", **settings))
    apart = DiffusionEngine(DiffusionSettings(tiny_sd15_dir, adapters=adapters, **settings))
    jobs = [GenerationJob("a cat", style=style, seed=2, **TINY) for style in ("text", "monet", "none")]
    results = mixing.generate(jobs)
    assert [r.batch_styles for r in results] == [3, 3, 3]
    for job, result in zip(jobs, results):
        assert np.abs(pixels(result.images[0]) - run_alone(apart, job)[0]).max() <= 1
    assert np.abs(pixels(results[0].images[0]) - pixels(results[1].images[0])).max() > 20


def with_text_encoder_layers(unet_lora, sd15_dir, out_path):
    """`unet_lora` plus rank-4 factors on every text-encoder q/v projection (PEFT layout)."""
    tensors = safetensors.torch.load_file(str(unet_lora))
    with safetensors.safe_open(str(unet_lora), framework="pt") as handle:
        config = json.loads(handle.metadata()["lora_adapter_metadata"])
    text = CLIPTextConfig.from_pretrained(sd15_dir / "text_encoder")
    generator = torch.Generator().manual_seed(5)
    width = text.hidden_size
    for layer in range(text.num_hidden_layers):
        for projection in ("q_proj", "v_proj"):
            name = f"text_encoder.text_model.encoder.layers.{layer}.self_attn.{projection}"
            tensors[f"{name}.lora_A.weight"] = torch.randn(4, width, generator=generator) / width**0.5
            tensors[f"{name}.lora_B.weight"] = torch.randn(width, 4, generator=generator) / 2
    config.update(
        {"text_encoder.r": 4, "text_encoder.lora_alpha": 4.0, "text_encoder.target_modules": ["q_proj", "v_proj"]}
    )
    safetensors.torch.save_file(tensors, str(out_path), metadata={"lora_adapter_metadata": json.dumps(config)})
    return out_path


# Three images in three styles; the third with a style and the LCM-LoRA on its rows.
UNET_STYLES = [dict(style="monet"), dict(), dict(style="r2_alpha2", style_scale=0.5, scheduler="lcm")]
UNET_ROW_ADAPTERS = [(("monet", 1.0),), (), (("r2_alpha2", 0.5), ("lcm", 1.0))]


def unet_inputs(engine, images=3):
    """A guided UNet batch: rows [uncond 0..n-1; cond 0..n-1]."""
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn((2 * images, 4, 8, 8), generator=generator).to(engine.torch_dtype)
    context = torch.randn((2 * images, 77, 32), generator=generator).to(engine.torch_dtype)
    return sample, torch.tensor([500]), context


def mixed_unet_call(engine, row_adapters):
    unet = engine.pipe.unet
    sample, timestep, context = unet_inputs(engine, len(row_adapters))
    if engine.fuser is not None:
        engine.fuser.restore()
    unet.disable_lora()
    mixed = MixedLoraRows(unet, row_adapters)
    with mixed.active():
        mixed.select_rows(torch.arange(sample.shape[0]))
        together = unet(sample, timestep, context, return_dict=False)[0].float()
    assert mixed.unet_calls == 1
    return together


@pytest.mark.parametrize("dtype, tolerance", [("float32", 1e-5), ("bfloat16", 0.03)])
def test_one_unet_call_with_mixed_rows_equals_each_image_alone_with_fused_weights(
    tiny_sd15_dir, lora_files, dtype, tolerance
):
    """Against the served default (each image alone, its adapters fused into the weights), both
    guidance halves. Measured: fp32 within 2e-6 of the output's range, bf16 (8 mantissa bits,
    rounded a few times over) within 2.3 %."""
    engine = make_engine(tiny_sd15_dir, lora_files, dtype=dtype)
    sample, timestep, context = unet_inputs(engine)
    with torch.inference_mode():
        together = mixed_unet_call(engine, UNET_ROW_ADAPTERS)
        for image, style in enumerate(UNET_STYLES):
            engine._activate_adapters(engine_key(**style))
            rows = [image, image + 3]  # its unconditional and conditional rows
            own = engine.pipe.unet(sample[rows], timestep, context[rows], return_dict=False)[0].float()
            assert (together[rows] - own).abs().max() <= tolerance * own.abs().max()


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_mixed_rows_compute_exactly_peft_s_own_unfused_forward(tiny_sd15_dir, lora_files, dtype):
    """Row for row the same ops as PEFT's LoRA layers with that image's adapters set, on the
    same batch: bit-identical, strong LoRAs (alpha / r = 8) included."""
    engine = make_engine(tiny_sd15_dir, lora_files, dtype=dtype, fuse_lora=False)
    row_adapters = [*UNET_ROW_ADAPTERS, (("r2_alpha16", 0.5), ("lcm", 1.0))]
    styles = [*UNET_STYLES, dict(style="r2_alpha16", style_scale=0.5, scheduler="lcm")]
    sample, timestep, context = unet_inputs(engine, len(styles))
    with torch.inference_mode():
        together = mixed_unet_call(engine, row_adapters)
        for image, style in enumerate(styles):
            engine._activate_adapters(engine_key(**style))
            own = engine.pipe.unet(sample, timestep, context, return_dict=False)[0].float()
            rows = [image, image + len(styles)]
            torch.testing.assert_close(together[rows], own[rows], rtol=0, atol=0)


def test_a_mixed_call_refines_the_unet_rate_once_not_once_per_style():
    from imagelab.cost import SpeedModel
    from imagelab.diffusion.speed import observe_generation

    jobs = MIXED_JOBS[:3]  # three styles, one call: one denoise time shared by all three
    timings_ms = {"text_encode": 10.0, "denoise": 3000.0, "decode": 30.0}
    results = [GenerationResult([], [1], None, dict(timings_ms), batch_images=3, batch_styles=3) for _ in jobs]
    speed = SpeedModel()
    observe_generation(speed, jobs, results)
    assert speed.describe()["unet"]["observations"] == 1


def engine_key(**overrides):
    from imagelab.diffusion.jobs import group_key

    return group_key(GenerationJob("x", **{**TINY, **overrides}))
