"""VGG16 perceptual features for Johnson et al. 2016: relu1_2, relu2_2, relu3_3, relu4_3.

Weights are a torchvision VGG16 state dict (`features.N.weight`; `classifier.*` ignored) from
weights/vgg16/, or a narrow stand-in with the same key names written by
`synthesize_tiny_vgg16` to weights/.tiny/vgg16/ (channel widths are read from the shapes, as
imagelab.neural_style.vgg does for VGG19).
"""

import math
from pathlib import Path
from typing import NamedTuple

import torch
from safetensors.torch import save_file
from torch import nn
from torchvision.models.vgg import cfgs, make_layers

from imagelab.neural_style.vgg import IMAGENET_MEAN, IMAGENET_STD
from imagelab.weights_io import read_state_dict
from weightstore.layout import ResolvedWeight, WeightsLayout

VGG16_CFG: tuple = tuple(cfgs["D"])
# Index of each ReLU in torchvision's vgg16().features (pytorch/examples' Vgg16 slices).
RELU_INDEX = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22}
CONV_INDICES = tuple(
    i
    for i, entry in enumerate([x for c in VGG16_CFG for x in ((c,) if c == "M" else (c, "R"))])
    if entry not in ("M", "R")
)


class VggOutputs(NamedTuple):
    relu1_2: torch.Tensor
    relu2_2: torch.Tensor
    relu3_3: torch.Tensor
    relu4_3: torch.Tensor


def normalize_batch(batch: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in 0-255 -> ImageNet-normalised, what torchvision's VGG expects."""
    mean = torch.tensor(IMAGENET_MEAN, device=batch.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=batch.device).view(1, 3, 1, 1)
    return (batch / 255.0 - mean) / std


class Vgg16Features(nn.Module):
    def __init__(self, layers: nn.Sequential):
        super().__init__()
        self.layers = layers[: RELU_INDEX["relu4_3"] + 1]

    def forward(self, x: torch.Tensor) -> VggOutputs:
        taps = {index: name for name, index in RELU_INDEX.items()}
        out = {}
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index in taps:
                out[taps[index]] = x
        return VggOutputs(**out)


def infer_vgg16_widths(state_dict: dict) -> list[int]:
    widths, in_channels = [], 3
    for index in CONV_INDICES:
        weight = state_dict.get(f"features.{index}.weight")
        if weight is None or f"features.{index}.bias" not in state_dict:
            raise ValueError(f"not a torchvision VGG16 state dict: features.{index}.weight/bias missing")
        if weight.ndim != 4 or tuple(weight.shape[1:]) != (in_channels, 3, 3):
            raise ValueError(
                f"not a torchvision VGG16 state dict: features.{index}.weight has shape "
                f"{tuple(weight.shape)}, expected (C, {in_channels}, 3, 3)"
            )
        in_channels = int(weight.shape[0])
        widths.append(in_channels)
    return widths


def load_vgg16_features(path: Path, device: str = "cpu") -> Vgg16Features:
    """Frozen VGG16 features from a .pth (weights_only) or .safetensors state dict."""
    state_dict = read_state_dict(Path(path))
    widths = iter(infer_vgg16_widths(state_dict))
    layers = make_layers([c if c == "M" else next(widths) for c in VGG16_CFG])
    layers.load_state_dict(
        {
            k.removeprefix("features."): v
            for k, v in state_dict.items()
            if k.startswith("features.") and int(k.split(".")[1]) < len(layers)
        }
    )
    return Vgg16Features(layers).to(device).eval().requires_grad_(False)


def synthesize_tiny_vgg16(out_path: Path, seed: int = 0, width_divisor: int = 8) -> Path:
    """torchvision's VGG16 `features` keys, channels / width_divisor, Kaiming-normal (fan_out)
    weights from `seed` and zero biases, as safetensors; same seed, same bytes."""
    generator = torch.Generator().manual_seed(seed)
    state_dict, in_channels = {}, 3
    for index, channels in zip(CONV_INDICES, (c for c in VGG16_CFG if c != "M")):
        out_channels = channels // width_divisor
        std = math.sqrt(2.0 / (out_channels * 9))
        state_dict[f"features.{index}.weight"] = torch.randn(out_channels, in_channels, 3, 3, generator=generator) * std
        state_dict[f"features.{index}.bias"] = torch.zeros(out_channels)
        in_channels = out_channels
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state_dict, str(out_path), metadata={"synthesized": f"tiny VGG16, seed={seed}, /{width_divisor}"})
    return out_path


def resolve_vgg16(layout: WeightsLayout) -> ResolvedWeight:
    """The first state dict in weights/vgg16/, else the tiny twin in weights/.tiny/vgg16/."""
    real = layout.first_real_in("vgg16")
    if real is not None:
        return ResolvedWeight(real, synthetic=False)
    return layout.resolve_file("vgg16/vgg16_tiny", synthesize_tiny_vgg16)
