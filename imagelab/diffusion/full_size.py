"""A full-size Stable Diffusion 1.5 folder with random weights, for the full-size test tier.

Same configs as `runwayml/stable-diffusion-v1-5` (UNet 859.5 M parameters, AutoencoderKL
83.7 M, CLIP ViT-L/14 text tower 123.1 M, the PNDM scheduler, model_max_length 77) and the
same `model_index.json`, which names a safety checker and a feature extractor that the folder
does not hold (a folder fetched without them, the path engine.load_pipeline handles). A random
model of the real size costs what the trained one costs and runs the same code; its pictures
are noise. The tokenizer is synthetic (full_tokenizer.py).

Random init: PyTorch's default init of the UNet takes ~20 s on 2 cores, so the UNet is built
on the meta device and filled with a normal of PyTorch's default variance (1 / (3 fan_in),
kaiming_uniform(a=sqrt(5))'s), norms at 1 and 0; VAE and text encoder keep their library
init. At that scale a 64 px image stays finite in float32 and bfloat16 (the tier checks it).
"""

import json
from pathlib import Path

import torch
from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from imagelab.diffusion.animals import AnimalClasses
from imagelab.diffusion.full_tokenizer import write_full_clip_tokenizer
from imagelab.diffusion.tiny import SD15_SCHEDULER_CONFIG

FP16_VARIANT = "fp16"

# runwayml/stable-diffusion-v1-5 unet/config.json
SD15_UNET_CONFIG = {
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}

# vae/config.json
SD15_VAE_CONFIG = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 512,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}

# text_encoder/config.json (openai/clip-vit-large-patch14's text tower). Its stale token ids
# (bos 0, eos 2) are kept as shipped: SD 1.5 uses the hidden states, never the pooled output.
SD15_TEXT_ENCODER_CONFIG = {
    "attention_dropout": 0.0,
    "bos_token_id": 0,
    "dropout": 0.0,
    "eos_token_id": 2,
    "hidden_act": "quick_gelu",
    "hidden_size": 768,
    "initializer_factor": 1.0,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": 77,
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "pad_token_id": 1,
    "projection_dim": 768,
    "vocab_size": 49408,
}

SD15_MODEL_INDEX = {
    "_class_name": "StableDiffusionPipeline",
    "feature_extractor": ["transformers", "CLIPImageProcessor"],
    "requires_safety_checker": True,
    "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
    "scheduler": ["diffusers", "PNDMScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}


def fill_like_default_init_(model: torch.nn.Module, generator: torch.Generator) -> torch.nn.Module:
    """Fill every parameter in place: Linear/Conv weights and biases ~ N(0, 1 / (3 fan_in)),
    norm gains 1 and shifts 0. Raises on any other parameter so nothing stays uninitialised."""
    norms = (torch.nn.GroupNorm, torch.nn.LayerNorm)
    with torch.no_grad():
        for name, module in model.named_modules():
            direct = dict(module.named_parameters(recurse=False))
            if not direct:
                continue
            if isinstance(module, norms):
                module.weight.fill_(1.0)
                module.bias.zero_()
            elif isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
                std = (3.0 * module.weight[0].numel()) ** -0.5  # weight[0]: in * kh * kw = fan_in
                module.weight.normal_(0.0, std, generator=generator)
                if module.bias is not None:
                    module.bias.normal_(0.0, std, generator=generator)
            else:
                raise TypeError(f"no init rule for {name} ({type(module).__name__}: {sorted(direct)})")
    if any(True for _ in model.buffers()):
        raise TypeError(f"{type(model).__name__} has buffers, which to_empty leaves uninitialised")
    return model


def full_size_unet(seed: int) -> UNet2DConditionModel:
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(SD15_UNET_CONFIG)
    unet = unet.to_empty(device="cpu")
    return fill_like_default_init_(unet, torch.Generator().manual_seed(seed))


def _save_both(model, name: str, out_dir: Path, fp16_dir: Path | None) -> None:
    """fp32 into out_dir/name; then, if asked, the hub's fp16 variant (*.fp16.safetensors) only
    into fp16_dir/name, as a folder fetched with `variant="fp16"` holds it."""
    model.save_pretrained(out_dir / name, safe_serialization=True)
    if fp16_dir is not None:
        model.to(torch.float16).save_pretrained(fp16_dir / name, safe_serialization=True, variant=FP16_VARIANT)


def synthesize_full_sd15(out_dir: str | Path, fp16_dir: str | Path | None = None, seed: int = 0) -> Path:
    """Write the full-size folder (fp32) to `out_dir`, and its fp16 variant to `fp16_dir`.

    Same seed -> same weights. Returns `out_dir`. Needs ~4.2 GB of memory and ~4.3 GB of disk
    (2.1 GB more for the fp16 folder).
    """
    out_dir = Path(out_dir)
    fp16_dir = Path(fp16_dir) if fp16_dir is not None else None
    folders = [out_dir] if fp16_dir is None else [out_dir, fp16_dir]
    import diffusers

    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        write_full_clip_tokenizer(folder / "tokenizer", list(AnimalClasses.load().names))
        PNDMScheduler(**SD15_SCHEDULER_CONFIG).save_pretrained(folder / "scheduler")
        index = {"_diffusers_version": diffusers.__version__, **SD15_MODEL_INDEX}
        (folder / "model_index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")

    _save_both(full_size_unet(seed), "unet", out_dir, fp16_dir)
    torch.manual_seed(seed + 1)
    _save_both(AutoencoderKL.from_config(SD15_VAE_CONFIG), "vae", out_dir, fp16_dir)
    torch.manual_seed(seed + 2)
    _save_both(CLIPTextModel(CLIPTextConfig(**SD15_TEXT_ENCODER_CONFIG)), "text_encoder", out_dir, fp16_dir)
    return out_dir
