"""VGG16 perceptual features for Johnson et al. 2016: relu1_2, relu2_2, relu3_3, relu4_3.

Weights are a torchvision VGG16 state dict (`features.N.weight`; `classifier.*` ignored) from
weights/vgg16/, or a narrow stand-in with the same key names written to weights/.tiny/vgg16/.
Loading, width inference and synthesis are imagelab.neural_style.vgg's, shared with VGG19.
"""

from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from imagelab.neural_style.vgg import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    VGG16_CFG,
    conv_positions,
    load_vgg_layers,
    synthesize_tiny_vgg,
)
from weightstore.layout import ResolvedWeight, WeightsLayout

# Index of each tapped ReLU in torchvision's vgg16().features (pytorch/examples' Vgg16 slices):
# the ReLU right after its conv.
RELU_INDEX = {
    f"relu{conv.removeprefix('conv')}": conv_positions(VGG16_CFG)[conv] + 1
    for conv in ("conv1_2", "conv2_2", "conv3_3", "conv4_3")
}


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


def load_vgg16_features(path: Path, device: str = "cpu") -> Vgg16Features:
    """Frozen VGG16 features from a .pth (weights_only) or .safetensors state dict."""
    return Vgg16Features(load_vgg_layers(path, VGG16_CFG)).to(device).eval().requires_grad_(False)


def synthesize_tiny_vgg16(out_path: Path, seed: int = 0, width_divisor: int = 8) -> Path:
    """The tiny offline VGG16 (synthesize_tiny_vgg with torchvision's VGG16 plan)."""
    return synthesize_tiny_vgg(out_path, VGG16_CFG, seed, width_divisor)


def resolve_vgg16(layout: WeightsLayout) -> ResolvedWeight:
    """The first state dict in weights/vgg16/, else the tiny twin in weights/.tiny/vgg16/."""
    real = layout.first_real_in("vgg16")
    if real is not None:
        return ResolvedWeight(real, synthetic=False)
    return layout.resolve_file("vgg16/vgg16_tiny", synthesize_tiny_vgg16)
