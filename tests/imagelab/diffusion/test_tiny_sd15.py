"""The tiny offline SD 1.5 folder: layout, classes, determinism, tokenizer."""

import hashlib
import json

from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

from imagelab.diffusion.tiny import synthesize_tiny_lora, synthesize_tiny_sd15


def folder_digest(folder) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_folder_has_the_sd15_layout(tiny_sd15_dir):
    model_index = json.loads((tiny_sd15_dir / "model_index.json").read_text())
    assert model_index["_class_name"] == "StableDiffusionPipeline"
    assert model_index["safety_checker"] == [None, None]
    for weights in (
        "unet/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.safetensors",
        "text_encoder/model.safetensors",
    ):
        assert (tiny_sd15_dir / weights).is_file()
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"):
        assert (tiny_sd15_dir / "tokenizer" / name).is_file()
    assert json.loads((tiny_sd15_dir / "scheduler/scheduler_config.json").read_text())["_class_name"] == "PNDMScheduler"
    assert not list(tiny_sd15_dir.rglob("*.bin")) and not list(tiny_sd15_dir.rglob("*.pt"))


def test_loads_as_sd15_component_classes(tiny_sd15_dir):
    pipe = StableDiffusionPipeline.from_pretrained(str(tiny_sd15_dir), local_files_only=True, use_safetensors=True)
    assert isinstance(pipe.unet, UNet2DConditionModel) and isinstance(pipe.vae, AutoencoderKL)
    assert isinstance(pipe.text_encoder, CLIPTextModel) and isinstance(pipe.tokenizer, CLIPTokenizer)
    assert pipe.tokenizer.model_max_length == 77
    assert pipe.unet.config.sample_size * pipe.vae_scale_factor == 64


def test_tokenizer_splits_words_and_marks_prompt_ends(tiny_sd15_dir):
    tokenizer = CLIPTokenizer.from_pretrained(str(tiny_sd15_dir / "tokenizer"))
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("A Lion").input_ids)
    assert tokens == ["<|startoftext|>", "a</w>", "lion</w>", "<|endoftext|>"]


def test_same_seed_same_bytes(tiny_sd15_dir, tmp_path):
    again = synthesize_tiny_sd15(tmp_path / "again", seed=0)
    assert folder_digest(again) == folder_digest(tiny_sd15_dir)
    other = synthesize_tiny_sd15(tmp_path / "other", seed=1)
    assert (
        folder_digest(other)["unet/diffusion_pytorch_model.safetensors"]
        != folder_digest(again)["unet/diffusion_pytorch_model.safetensors"]
    )


def test_tiny_lora_is_deterministic(tiny_sd15_dir, tmp_path):
    first = synthesize_tiny_lora(tmp_path / "a.safetensors", tiny_sd15_dir / "unet", seed=4, rank=2, alpha=8)
    config = UNet2DConditionModel.load_config(tiny_sd15_dir / "unet")
    second = synthesize_tiny_lora(tmp_path / "b.safetensors", config, seed=4, rank=2, alpha=8)
    assert first.read_bytes() == second.read_bytes()
