"""A full-size VGG19 with random weights in torchvision's layout, for the full-size test tier.

The file looks like torchvision's `vgg19-dcbb9e9d.pth`: a pickled state dict (read back with
`weights_only=True`) holding `features.*` at the real widths and the 1000-class
`classifier.*` that VGG19Features ignores (548 MB, as the real file). The features are
`synthesize_tiny_vgg19` at width_divisor 1, so the two share one init.
"""

import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file

from imagelab.neural_style.vgg import synthesize_tiny_vgg19

# torchvision.models.vgg.VGG.classifier: Linear(512*7*7, 4096), ReLU, Dropout, Linear(4096, 4096),
# ReLU, Dropout, Linear(4096, 1000).
CLASSIFIER_SHAPES = {0: (4096, 512 * 7 * 7), 3: (4096, 4096), 6: (1000, 4096)}


def synthesize_full_vgg19(out_path: str | Path, seed: int = 0) -> Path:
    out_path = Path(out_path)
    if out_path.suffix != ".pth":
        raise ValueError(f"out_path must end in .pth (torchvision's format), got {out_path.name}")
    with tempfile.TemporaryDirectory() as scratch:
        features = synthesize_tiny_vgg19(Path(scratch) / "features.safetensors", seed=seed, width_divisor=1)
        state_dict = load_file(str(features))
    generator = torch.Generator().manual_seed(seed + 1)
    for index, (out_features, in_features) in CLASSIFIER_SHAPES.items():
        # torchvision's VGG init for Linear layers: N(0, 0.01), zero bias.
        state_dict[f"classifier.{index}.weight"] = torch.randn(out_features, in_features, generator=generator) * 0.01
        state_dict[f"classifier.{index}.bias"] = torch.zeros(out_features)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state_dict, out_path)
    return out_path
