"""SD 1.5 at its real size through imagelab/diffusion/engine.py: both folder forms load, LoRA
layouts agree, images stay finite in float32 and bfloat16, the 77-token limit holds."""

import gc
import json

import numpy as np
import pytest

from imagelab.diffusion.engine import DiffusionEngine
from imagelab.diffusion.jobs import DiffusionSettings, GenerationJob, PromptTooLongError

pytestmark = pytest.mark.fullsize

# SD 1.5's published sizes (runwayml/stable-diffusion-v1-5).
UNET_PARAMETERS = 859_520_964
TEXT_ENCODER_PARAMETERS = 123_060_480
VAE_PARAMETERS = 83_653_863

SMALL = {"steps": 2, "width": 64, "height": 64, "scheduler": "ddim", "seed": 11}

# (folder, dtype): the fp32 folder in float32; the hub's fp16 variant in bfloat16, the dtype
# `auto` picks on this CPU (native bf16); fp16 itself needs CUDA.
PRECISIONS = {"fp32-folder-float32": ("sd15", "float32"), "fp16-variant-bfloat16": ("sd15_fp16", "bfloat16")}


@pytest.fixture(scope="module", params=sorted(PRECISIONS))
def engine(request, full_size):
    folder_name, dtype = PRECISIONS[request.param]
    settings = DiffusionSettings(
        getattr(full_size, folder_name),
        dtype=dtype,
        adapters={"style_diffusers": full_size.lora("diffusers"), "style_kohya": full_size.lora("kohya")},
    )
    engine = DiffusionEngine(settings)
    yield engine
    del engine
    gc.collect()  # one full-size pipeline at a time


@pytest.fixture(scope="module")
def baseline(engine):
    """One image without a style, shared by the tests below (each full-size call costs)."""
    return generate_one(engine, **SMALL)


def generate_one(engine, **fields):
    result = engine.generate([GenerationJob(prompt=fields.pop("prompt", "a lion in the grass"), **fields)])[0]
    return result, result.images[0]


def test_loads_at_the_real_size(engine):
    pipe = engine.pipe
    base_unet = sum(p.numel() for name, p in pipe.unet.named_parameters() if ".lora_" not in name)
    assert base_unet == UNET_PARAMETERS
    assert sum(p.numel() for p in pipe.text_encoder.parameters()) == TEXT_ENCODER_PARAMETERS
    assert sum(p.numel() for p in pipe.vae.parameters()) == VAE_PARAMETERS
    assert engine.native_size_px == 512
    assert len(pipe.tokenizer) == 49408 and engine.max_prompt_tokens == 77
    assert pipe.unet.dtype == engine.torch_dtype == pipe.text_encoder.dtype == pipe.vae.dtype


def test_each_folder_holds_only_its_own_weight_files(full_size):
    """The fp16 folder is what a `variant="fp16"` download holds: no fp32 file to fall back on,
    so loading it proves load_pipeline picks the variant."""
    fp32_files = sorted(p.name for p in full_size.sd15.rglob("*.safetensors"))
    fp16_files = sorted(p.name for p in full_size.sd15_fp16.rglob("*.safetensors"))
    assert fp32_files and not any(".fp16." in name for name in fp32_files)
    assert fp16_files and all(name.endswith(".fp16.safetensors") for name in fp16_files)


def test_images_are_finite_and_visible_without_a_style(baseline, assert_visible):
    result, image = baseline
    assert_visible(image)
    assert result.vae_fp32_retries == 0  # the VAE stayed finite in the engine's own dtype


def test_kohya_and_diffusers_layouts_give_the_same_image(engine, baseline, assert_visible):
    _, base = baseline
    _, diffusers_image = generate_one(engine, style="style_diffusers", **SMALL)
    _, kohya_image = generate_one(engine, style="style_kohya", **SMALL)
    assert_visible(diffusers_image)
    diffusers_pixels, kohya_pixels = np.asarray(diffusers_image), np.asarray(kohya_image)
    assert np.array_equal(diffusers_pixels, kohya_pixels)
    # rank 2, alpha 16 over every attention projection: the LoRA must change the picture
    assert np.abs(diffusers_pixels.astype(int) - np.asarray(base).astype(int)).mean() > 1.0


def test_a_77_token_prompt_runs_and_a_78_token_prompt_is_refused(engine, assert_visible):
    # "a" is one token of the vocabulary; BOS and EOS make 75 words 77 tokens
    longest = " ".join(["a"] * 75)
    assert engine.count_tokens(longest) == 77
    _, image = generate_one(engine, prompt=longest, **{**SMALL, "steps": 1})
    assert_visible(image)
    with pytest.raises(PromptTooLongError) as refused:
        engine.validate_job(GenerationJob(prompt=longest + " a"))
    assert (refused.value.field_name, refused.value.token_count, refused.value.max_tokens) == ("prompt", 78, 77)
    with pytest.raises(PromptTooLongError, match="negative_prompt"):
        engine.validate_job(GenerationJob(prompt="a cat", negative_prompt=longest + " a"))


def test_the_folder_without_its_safety_checker_loads_and_says_unchecked(engine, baseline, full_size):
    """SD 1.5's model_index.json names a safety checker; a folder fetched without it must load
    and report nsfw=None (not checked) rather than fail or claim the image is safe."""
    index = json.loads((full_size.sd15 / "model_index.json").read_text())
    assert index["safety_checker"][0] is not None and not (full_size.sd15 / "safety_checker").exists()
    assert not engine.has_safety_checker
    assert baseline[0].nsfw is None
