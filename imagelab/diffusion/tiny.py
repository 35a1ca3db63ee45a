"""Offline tiny Stable Diffusion 1.5 and tiny LoRAs, for tests and for servers without real weights.

The tiny pipeline uses the same component classes and on-disk layout as SD 1.5
(`runwayml/stable-diffusion-v1-5`): UNet2DConditionModel, AutoencoderKL, CLIPTextModel,
CLIPTokenizer and the PNDM scheduler config SD 1.5 ships, so loading it exercises the same
code path as the real model. Sizes follow diffusers' own pipeline tests
(tests/pipelines/stable_diffusion/test_stable_diffusion.py): two UNet/VAE blocks of 32 and
64 channels, cross-attention width 32. The two-block VAE downsamples by 2 (SD 1.5: by 8), so a
32x32 latent decodes to a 64x64 image.
"""

import json
from pathlib import Path

import torch
from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from imagelab.diffusion.animals import AnimalClasses
from imagelab.diffusion.lora import LoraLayout, save_lora
from imagelab.diffusion.tiny_tokenizer import write_tiny_clip_tokenizer

TINY_IMAGE_SIZE_PX = 64
ATTENTION_PROJECTIONS = ("to_q", "to_k", "to_v", "to_out.0")

# As in SD 1.5's scheduler/scheduler_config.json.
SD15_SCHEDULER_CONFIG = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
}


def _tiny_unet() -> UNet2DConditionModel:
    return UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=TINY_IMAGE_SIZE_PX // 2,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
    )


def _tiny_vae() -> AutoencoderKL:
    return AutoencoderKL(
        block_out_channels=(32, 64),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        layers_per_block=1,
        sample_size=TINY_IMAGE_SIZE_PX,
    )


def _tiny_text_encoder(vocab_size: int, bos_token_id: int, eos_token_id: int) -> CLIPTextModel:
    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=37,
        projection_dim=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        layer_norm_eps=1e-5,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=eos_token_id,
    )
    return CLIPTextModel(config)


def synthesize_tiny_sd15(out_dir: str | Path, seed: int = 0) -> Path:
    """Write a tiny SD 1.5-layout diffusers folder to `out_dir` and return it.

    Same seed -> same weights (each component is built under its own fixed seed).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer_dir = write_tiny_clip_tokenizer(out_dir / "tokenizer", list(AnimalClasses.load().names))
    vocab = json.loads((tokenizer_dir / "vocab.json").read_text(encoding="utf-8"))

    torch.manual_seed(seed)
    _tiny_unet().save_pretrained(out_dir / "unet", safe_serialization=True)
    torch.manual_seed(seed + 1)
    _tiny_vae().save_pretrained(out_dir / "vae", safe_serialization=True)
    torch.manual_seed(seed + 2)
    text_encoder = _tiny_text_encoder(len(vocab), vocab["<|startoftext|>"], vocab["<|endoftext|>"])
    text_encoder.save_pretrained(out_dir / "text_encoder", safe_serialization=True)
    PNDMScheduler(**SD15_SCHEDULER_CONFIG).save_pretrained(out_dir / "scheduler")

    import diffusers

    model_index = {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": diffusers.__version__,
        "feature_extractor": [None, None],
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", "PNDMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    (out_dir / "model_index.json").write_text(json.dumps(model_index, indent=2) + "\n", encoding="utf-8")
    return out_dir


def _attention_projection_shapes(unet_config: dict) -> dict[str, tuple[int, int]]:
    """Module name -> (in_features, out_features) of every attention projection in the UNet."""
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(unet_config)
    shapes = {}
    for name, module in unet.named_modules():
        if isinstance(module, torch.nn.Linear) and name.endswith(ATTENTION_PROJECTIONS):
            if ".attn1." in name or ".attn2." in name:
                shapes[name] = (module.in_features, module.out_features)
    return shapes


def synthesize_tiny_lora(
    out_path: str | Path,
    unet_dir_or_config: str | Path | dict,
    seed: int,
    rank: int = 4,
    alpha: float = 4.0,
    layout: LoraLayout = "diffusers",
) -> Path:
    """Write a LoRA over every attention projection (to_q, to_k, to_v, to_out.0) of the UNet.

    The random factors depend only on `seed` and `rank`, never on `alpha`: the applied update is
    `alpha / rank * up @ down`, so two files that differ only in alpha differ in strength by
    exactly that ratio. At alpha == rank the update is about as large as the projection itself,
    which changes a tiny model's image visibly.
    """
    if isinstance(unet_dir_or_config, dict):
        unet_config = unet_dir_or_config
    else:
        unet_config = UNet2DConditionModel.load_config(unet_dir_or_config)
    generator = torch.Generator().manual_seed(seed)
    weights = {}
    for name, (in_features, out_features) in sorted(_attention_projection_shapes(unet_config).items()):
        lora_down = torch.randn(rank, in_features, generator=generator) / in_features**0.5  # (r, in)
        lora_up = torch.randn(out_features, rank, generator=generator) / rank**0.5  # (out, r)
        weights[name] = (lora_down, lora_up)
    return save_lora(out_path, weights, alpha=alpha, layout=layout)
