"""VGG feature extraction from torchvision VGG state dicts: Gatys et al. 2016's VGG19 features
for neural style, and the helpers any torchvision VGG plan shares (VGG16 for fast-style
training's perceptual loss uses them too, in training/fast_style/vgg16.py).

Weights are a torchvision VGG state dict (`features.0.weight`, ...; `classifier.*` keys are
ignored) in a `.pth` file (read with `torch.load(weights_only=True)`) or a `.safetensors` file.
Channel widths are read from the weight shapes, so the same loader takes the real network and
the narrow offline stand-in written by `synthesize_tiny_vgg`.
"""

import math
from pathlib import Path
from typing import NamedTuple

import torch
from safetensors.torch import save_file
from torch import nn
from torch.nn import functional as F
from torchvision.models.vgg import cfgs, make_layers

from imagelab.devices import cpu_supports_bf16
from imagelab.weights_io import read_state_dict

# torchvision's layer plans ("E" is VGG19, "D" VGG16): channel counts, "M" for a 2x2 max-pool.
VGG19_CFG: tuple[int | str, ...] = tuple(cfgs["E"])
VGG16_CFG: tuple[int | str, ...] = tuple(cfgs["D"])

# Gatys et al. 2016, section 3: content on conv4_2, style on conv1_1 ... conv5_1.
CONTENT_LAYERS = ("conv4_2",)
STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")

POOLING_MODES = ("avg", "max")

# None runs in fp32. No fp16: its gradients underflow without loss scaling, which L-BFGS's
# closure and curvature pairs do not take.
AUTOCAST_DTYPES = (None, torch.bfloat16)

# torchvision's ImageNet statistics; inputs to VGG19Features are RGB in [0, 1].
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def conv_positions(cfg: tuple[int | str, ...]) -> dict[str, int]:
    """Map "conv{block}_{n}" to its index in the `features` Sequential torchvision builds from
    `cfg` (its ReLU is at the index + 1)."""
    positions, index, block, n = {}, 0, 1, 1
    for entry in cfg:
        if entry == "M":
            index, block, n = index + 1, block + 1, 1
        else:
            positions[f"conv{block}_{n}"] = index
            index, n = index + 2, n + 1  # each conv is followed by its ReLU
    return positions


CONV_POSITIONS = conv_positions(VGG19_CFG)


def infer_vgg_widths(state_dict: dict[str, torch.Tensor], cfg: tuple[int | str, ...]) -> list[int]:
    """Output channels of every conv of the torchvision VGG plan `cfg`, checked against it
    (shapes chain, no batch-norm or other extra `features.*` keys)."""
    name = f"VGG{len(conv_positions(cfg)) + 3}"  # 16 convs + 3 linear layers: VGG19
    features_keys = {key for key in state_dict if key.startswith("features.")}
    expected_keys = set()
    widths, in_channels = [], 3
    for conv, index in conv_positions(cfg).items():
        weight_key, bias_key = f"features.{index}.weight", f"features.{index}.bias"
        expected_keys |= {weight_key, bias_key}
        weight = state_dict.get(weight_key)
        if weight is None or bias_key not in state_dict:
            raise ValueError(f"not a torchvision {name} state dict: {weight_key} or {bias_key} missing")
        if weight.ndim != 4 or tuple(weight.shape[1:]) != (in_channels, 3, 3):
            raise ValueError(
                f"not a torchvision {name} state dict: {weight_key} ({conv}) has shape "
                f"{tuple(weight.shape)}, expected (C, {in_channels}, 3, 3)"
            )
        in_channels = int(weight.shape[0])
        widths.append(in_channels)
    extra = sorted(features_keys - expected_keys)
    if extra:
        raise ValueError(f"not a plain torchvision {name} state dict ({name.lower()}_bn?): extra keys {extra[:4]}")
    return widths


def vgg_layer_plan(cfg: tuple[int | str, ...], widths: list[int]) -> list[int | str]:
    """torchvision's plan `cfg` with its channel counts replaced by `widths`."""
    remaining = iter(widths)
    return [entry if entry == "M" else next(remaining) for entry in cfg]


def load_vgg_layers(path: str | Path, cfg: tuple[int | str, ...]) -> nn.Sequential:
    """torchvision's `features` Sequential for `cfg`, at the widths and with the weights of the
    state dict file at `path`."""
    state_dict = read_state_dict(Path(path))
    layers = make_layers(vgg_layer_plan(cfg, infer_vgg_widths(state_dict, cfg)))
    layers.load_state_dict({k.removeprefix("features."): v for k, v in state_dict.items() if k.startswith("features.")})
    return layers


def synthesize_tiny_vgg(
    out_path: str | Path, cfg: tuple[int | str, ...], seed: int = 0, width_divisor: int = 8
) -> Path:
    """Write a narrow, randomly initialised VGG `features` state dict of plan `cfg` as safetensors.

    Same layer sequence and key names as torchvision's, channels divided by `width_divisor`,
    weights drawn like torchvision's init (Kaiming normal, fan_out, zero bias) from a generator
    seeded with `seed`, so the same seed writes the same bytes.
    """
    if isinstance(width_divisor, bool) or not isinstance(width_divisor, int) or not 1 <= width_divisor <= 64:
        raise ValueError(f"width_divisor must be an integer in [1, 64], got {width_divisor!r}")
    out_path = Path(out_path)
    if out_path.suffix != ".safetensors":
        raise ValueError(f"out_path must end in .safetensors, got {out_path.name}")
    generator = torch.Generator().manual_seed(seed)
    state_dict, in_channels = {}, 3
    for index, channels in zip(conv_positions(cfg).values(), (c for c in cfg if c != "M")):
        out_channels = channels // width_divisor
        std = math.sqrt(2.0 / (out_channels * 3 * 3))
        weight = torch.randn(out_channels, in_channels, 3, 3, generator=generator) * std
        state_dict[f"features.{index}.weight"] = weight
        state_dict[f"features.{index}.bias"] = torch.zeros(out_channels)
        in_channels = out_channels
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # One metadata key: safetensors writes several in hash order, which would vary the bytes.
    name = f"VGG{len(conv_positions(cfg)) + 3}"
    metadata = {"synthesized": f"tiny {name}, seed={seed}, width_divisor={width_divisor}"}
    save_file(state_dict, str(out_path), metadata=metadata)
    return out_path


class FeatureMaps(NamedTuple):
    content: tuple[torch.Tensor, ...]  # one (B, C, H, W) per content layer
    style: tuple[torch.Tensor, ...]  # one (B, C, H, W) per style layer


class VGG19Features(nn.Module):
    """Runs torchvision VGG19 `features` up to the last layer Gatys needs (relu5_1).

    Activations are taken after each named conv's ReLU: Gatys et al. used Caffe's VGG19, whose
    ReLUs run in place, so the blobs they call conv4_2, conv1_1, ... hold rectified responses.
    """

    def __init__(
        self,
        layers: nn.Sequential,
        content_layers: tuple[str, ...] = CONTENT_LAYERS,
        style_layers: tuple[str, ...] = STYLE_LAYERS,
        autocast_dtype: torch.dtype | None = None,
    ):
        super().__init__()
        if autocast_dtype not in AUTOCAST_DTYPES:
            raise ValueError(f"autocast_dtype must be one of {AUTOCAST_DTYPES}, got {autocast_dtype!r}")
        # The convolutions run in this dtype under torch.autocast, their weights stored in it:
        # autocast recasts frozen fp32 weights at every call, which on the full VGG19 cost more
        # than the bf16 convolutions saved (128 px: 71 s per megapixel-step against fp32's 34;
        # with bf16 weights 7.6). The returned maps are fp32, so Gram matrices and losses are
        # summed in fp32.
        self.autocast_dtype = autocast_dtype
        unknown = [name for name in content_layers + style_layers if name not in CONV_POSITIONS]
        if unknown:
            raise ValueError(f"unknown VGG19 layers {unknown}; accepted: {list(CONV_POSITIONS)}")
        self.content_layers = tuple(content_layers)
        self.style_layers = tuple(style_layers)
        # The ReLU after conv at index i sits at i + 1; nothing past the last one is run.
        self._relu_index = {name: CONV_POSITIONS[name] + 1 for name in content_layers + style_layers}
        self.layers = layers[: max(self._relu_index.values()) + 1]
        if autocast_dtype is not None:
            self.layers.to(autocast_dtype)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor, pooling: str = "avg") -> FeatureMaps:
        """image: (B, 3, H, W) RGB in [0, 1]. pooling "avg" replaces every max-pool by a 2x2
        average pool (Gatys et al. 2016 found it gives slightly more appealing results)."""
        if pooling not in POOLING_MODES:
            raise ValueError(f"pooling must be one of {list(POOLING_MODES)}, got {pooling!r}")
        wanted = {index: name for name, index in self._relu_index.items()}
        activations = {}
        h = (image - self.mean) / self.std
        autocast = self.autocast_dtype is not None
        with torch.autocast(image.device.type, dtype=self.autocast_dtype, enabled=autocast):
            for index, layer in enumerate(self.layers):
                if isinstance(layer, nn.MaxPool2d):
                    h = F.avg_pool2d(h, kernel_size=2, stride=2) if pooling == "avg" else layer(h)
                elif isinstance(layer, nn.ReLU):
                    h = F.relu(h)  # not in place: the activation may be kept for a loss
                else:
                    h = layer(h)
                if index in wanted:
                    activations[wanted[index]] = h.float()
        return FeatureMaps(
            content=tuple(activations[name] for name in self.content_layers),
            style=tuple(activations[name] for name in self.style_layers),
        )


def load_vgg19_features(
    path: str | Path, device: str | torch.device = "cpu", autocast_dtype: torch.dtype | None = None
) -> VGG19Features:
    """Frozen (eval, requires_grad=False) VGG19 features from a torchvision state dict file,
    its convolutions under autocast to `autocast_dtype` if given (see `autocast_dtype_for`)."""
    # Outside inference mode, so the weights are ordinary tensors that autograd may save even
    # when the caller (a TorchServe handler) loads them under torch.inference_mode().
    with torch.inference_mode(False):
        layers = load_vgg_layers(path, VGG19_CFG)
        model = VGG19Features(layers, autocast_dtype=autocast_dtype).to(device)
    return model.eval().requires_grad_(False)


def synthesize_tiny_vgg19(out_path: str | Path, seed: int = 0, width_divisor: int = 8) -> Path:
    """The tiny offline VGG19 (synthesize_tiny_vgg with torchvision's VGG19 plan)."""
    return synthesize_tiny_vgg(out_path, VGG19_CFG, seed, width_divisor)


def autocast_dtype_for(device: str) -> torch.dtype | None:
    """bf16 where the device runs it natively (CPUs with AVX512-BF16 or AMX, CUDA GPUs from
    Ampere on), else None (fp32): emulated bf16 is slower than fp32 (imagelab/devices.py)."""
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if cpu_supports_bf16() else None
