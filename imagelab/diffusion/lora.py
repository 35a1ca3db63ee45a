"""LoRA files for the SD 1.5 UNet: the two layouts the project reads and writes.

A LoRA (Hu et al. 2021) adds `alpha / rank * up @ down` to a Linear weight. Files come in two
layouts, both loaded by diffusers 0.42's `StableDiffusionPipeline.load_lora_weights`:

* ``"kohya"`` (kohya-ss sd-scripts, AUTOMATIC1111): one flat name per module,
  ``lora_unet_<module path with _>.lora_down.weight`` (rank, in), ``.lora_up.weight``
  (out, rank) and ``.alpha`` (a scalar tensor). diffusers converts these and turns the alphas
  into `network_alphas`, hence `LoraConfig(lora_alpha=...)`.
* ``"diffusers"`` (PEFT names, as `save_lora_weights` writes them):
  ``unet.<module path>.lora_A.weight`` (rank, in) and ``.lora_B.weight`` (out, rank).
  These keys carry no alpha. diffusers 0.42 reads the scaling back from the safetensors
  header: `__metadata__["lora_adapter_metadata"]` is a JSON object of `LoraConfig` arguments
  prefixed by component, here ``{"unet.r": rank, "unet.lora_alpha": alpha,
  "unet.target_modules": [...]}`` (see diffusers `lora_base._fetch_state_dict` and
  `utils.peft_utils._create_lora_config`, which passes it to `LoraConfig` unchanged).
  Without that metadata diffusers assumes alpha == rank, i.e. scale 1, which silently
  weakens a LoRA trained with alpha > rank; so every diffusers-layout file written here
  carries it. diffusers 0.42 ignores `.alpha` keys in this layout (they are not LoRA keys).
"""

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import safetensors.torch
import torch

LoraLayout = Literal["diffusers", "kohya"]
LORA_LAYOUTS = ("diffusers", "kohya")
LORA_ADAPTER_METADATA_KEY = "lora_adapter_metadata"  # diffusers.loaders.lora_base


def save_lora(
    out_path: str | Path,
    weights: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
    alpha: float,
    layout: LoraLayout = "diffusers",
) -> Path:
    """Write UNet LoRA factors to a safetensors file and return its path.

    `weights` maps a UNet module name (``down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q``)
    to `(lora_down, lora_up)` with shapes (rank, in) and (out, rank). All modules share one rank.
    """
    if layout not in LORA_LAYOUTS:
        raise ValueError(f"layout must be one of {LORA_LAYOUTS}, got {layout!r}")
    if not weights:
        raise ValueError("weights is empty: a LoRA needs at least one module")
    ranks = {down.shape[0] for down, _ in weights.values()}
    if len(ranks) != 1:
        raise ValueError(f"every module must share one rank, got ranks {sorted(ranks)}")
    rank = ranks.pop()
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    tensors: dict[str, torch.Tensor] = {}
    # One metadata key only: safetensors writes the header's metadata from a Rust HashMap, so
    # two keys come out in a random order and the same LoRA would not give the same bytes.
    metadata = {"format": "pt"}
    if layout == "kohya":
        for module, (down, up) in weights.items():
            flat = "lora_unet_" + module.replace(".", "_")
            tensors[f"{flat}.lora_down.weight"] = down.contiguous()
            tensors[f"{flat}.lora_up.weight"] = up.contiguous()
            tensors[f"{flat}.alpha"] = torch.tensor(float(alpha))
    else:
        for module, (down, up) in weights.items():
            tensors[f"unet.{module}.lora_A.weight"] = down.contiguous()
            tensors[f"unet.{module}.lora_B.weight"] = up.contiguous()
        config = {"unet.r": rank, "unet.lora_alpha": float(alpha), "unet.target_modules": sorted(weights)}
        metadata = {LORA_ADAPTER_METADATA_KEY: json.dumps(config, sort_keys=True)}
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    safetensors.torch.save_file(tensors, str(out_path), metadata=metadata)
    return out_path


def read_lora(path: str | Path) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], float]:
    """Read a diffusers-layout UNet LoRA back as (weights, alpha), the inverse of `save_lora`.

    Files without `lora_adapter_metadata` get alpha == rank, as diffusers assumes.
    """
    path = Path(path)
    tensors = safetensors.torch.load_file(str(path))
    if any(key.startswith("lora_unet_") for key in tensors):
        raise ValueError(f"{path} is in the kohya layout; read_lora reads the diffusers layout")
    with safetensors.safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    weights = {}
    for key in tensors:
        if key.startswith("unet.") and key.endswith(".lora_A.weight"):
            module = key.removeprefix("unet.").removesuffix(".lora_A.weight")
            weights[module] = (tensors[key], tensors[f"unet.{module}.lora_B.weight"])
    if not weights:
        raise ValueError(f"{path} holds no UNet LoRA keys (unet.*.lora_A.weight)")
    rank = next(iter(weights.values()))[0].shape[0]
    config = json.loads(metadata.get(LORA_ADAPTER_METADATA_KEY, "{}"))
    return weights, float(config.get("unet.lora_alpha", rank))
