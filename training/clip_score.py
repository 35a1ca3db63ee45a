"""CLIP score (Hessel et al. 2021, as torchmetrics computes it: 100 * max(cos(image, text), 0))
with a transformers CLIP folder: weights/clip/ when present, else a tiny synthetic CLIPModel of
the same class written to weights/.tiny/clip/ with a fixed seed.

The tiny model's scores measure nothing about pictures; they exercise the real code path.
"""

import json
from pathlib import Path

import torch
from PIL import Image
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

from imagelab.diffusion.animals import AnimalClasses
from imagelab.diffusion.tiny_tokenizer import write_tiny_clip_tokenizer
from weightstore.layout import ResolvedWeight, WeightsLayout

CLIP_MARKER = "config.json"
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
TINY_CLIP_IMAGE_PX = 32


def synthesize_tiny_clip(out_dir: Path, seed: int = 0) -> Path:
    """A CLIPModel with two 32-wide layers per tower, the tiny CLIP tokenizer and an image
    processor, in the layout of openai/clip-vit-base-patch32's folder."""
    out_dir = Path(out_dir)
    write_tiny_clip_tokenizer(out_dir, list(AnimalClasses.load().names))
    vocab = json.loads((out_dir / "vocab.json").read_text(encoding="utf-8"))
    eos = vocab["<|endoftext|>"]
    tower = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4)
    config = CLIPConfig(
        text_config=dict(
            vocab_size=len(vocab),
            max_position_embeddings=77,
            bos_token_id=vocab["<|startoftext|>"],
            eos_token_id=eos,
            pad_token_id=eos,
            **tower,
        ),
        vision_config=dict(image_size=TINY_CLIP_IMAGE_PX, patch_size=8, **tower),
        projection_dim=32,
    )
    torch.manual_seed(seed)
    CLIPModel(config).save_pretrained(out_dir, safe_serialization=True)
    CLIPImageProcessor(
        size={"shortest_edge": TINY_CLIP_IMAGE_PX},
        crop_size={"height": TINY_CLIP_IMAGE_PX, "width": TINY_CLIP_IMAGE_PX},
        image_mean=list(OPENAI_CLIP_MEAN),
        image_std=list(OPENAI_CLIP_STD),
    ).save_pretrained(out_dir)
    return out_dir


def resolve_clip_dir(layout: WeightsLayout) -> ResolvedWeight:
    return layout.resolve_dir("clip", CLIP_MARKER, synthesize_tiny_clip)


class ClipScorer:
    """Loads a CLIP folder once; `score` gives one CLIP score per (image, prompt) pair."""

    def __init__(self, clip_dir: Path, device: str = "cpu"):
        clip_dir = Path(clip_dir)
        if not (clip_dir / CLIP_MARKER).is_file():
            raise FileNotFoundError(f"{clip_dir} is not a transformers CLIP folder (no {CLIP_MARKER})")
        self.clip_dir = clip_dir
        self.device = device
        self.model = CLIPModel.from_pretrained(str(clip_dir), local_files_only=True).to(device).eval()
        self.tokenizer = CLIPTokenizer.from_pretrained(str(clip_dir), local_files_only=True)
        self.processor = CLIPImageProcessor.from_pretrained(str(clip_dir), local_files_only=True)

    @torch.inference_mode()
    def score(self, images: list[Image.Image], prompts: list[str]) -> list[float]:
        if len(images) != len(prompts):
            raise ValueError(f"one prompt per image: got {len(images)} images and {len(prompts)} prompts")
        if not images:
            return []
        text = self.tokenizer(
            list(prompts),
            padding=True,
            truncation=True,
            max_length=self.tokenizer.model_max_length,
            return_tensors="pt",
        )
        pixels = self.processor(images=[im.convert("RGB") for im in images], return_tensors="pt")
        outputs = self.model(
            input_ids=text.input_ids.to(self.device),
            attention_mask=text.attention_mask.to(self.device),
            pixel_values=pixels.pixel_values.to(self.device),
        )
        # text_embeds and image_embeds come out L2-normalised, (N, projection_dim) each.
        cosine = (outputs.image_embeds * outputs.text_embeds).sum(dim=-1)
        return (100.0 * cosine.clamp(min=0)).tolist()
