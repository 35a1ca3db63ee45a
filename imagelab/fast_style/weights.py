"""Load TransformerNet weights in the pytorch/examples layout, and synthesise offline ones."""

import re
from pathlib import Path

import torch
from safetensors.torch import save_file

from imagelab.fast_style.transformer_net import TransformerNet
from imagelab.weights_io import read_state_dict

# Checkpoints saved before PyTorch 0.4 carry InstanceNorm running statistics that the layer
# no longer tracks (track_running_stats=False); pytorch/examples drops them the same way.
_STALE_KEY = re.compile(r"in\d+\.(running_mean|running_var|num_batches_tracked)$")

# Mean colour (RGB, 0-255) each synthetic style is nudged toward, so offline styles differ
# visibly from each other; real checkpoints are untouched by this.
SYNTHETIC_TINTS = {
    "candy": (230.0, 90.0, 140.0),
    "mosaic": (70.0, 130.0, 200.0),
    "udnie": (200.0, 160.0, 90.0),
    "rain_princess": (120.0, 80.0, 170.0),
}


def clean_state_dict(state: dict) -> dict:
    return {k: v for k, v in state.items() if not _STALE_KEY.search(k)}


def load_transformer_net(
    path: Path, device: str = "cpu", dtype: torch.dtype = torch.float32, channels_last: bool = False
) -> TransformerNet:
    """A `{style}.pth` or `.safetensors` state dict -> an eval-mode TransformerNet in `dtype`
    (pick it with imagelab.devices.resolve_dtype: bf16 only where the CPU has it natively, fp16
    on CUDA, where the 0-255 activations fit). `stylize` feeds it input in its own layout.

    channels_last (oneDNN's native layout) is faster than NCHW for one 512 px image in bf16 and
    in fp32 on the CPUs measured (BENCHMARKS.md fast_style), but oneDNN then picks kernels by
    batch size, so an image batched with others differs by up to 2 levels from the same image
    alone; in NCHW the result is the same bit for bit whatever the batch. The service keeps the
    API's same-image promise by running each image alone (handlers/services/fast_style.py).
    """
    state = clean_state_dict(read_state_dict(path))
    model = TransformerNet()
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise ValueError(
            f"{path} is not a TransformerNet state dict in the pytorch/examples layout: "
            f"missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    model.load_state_dict(state)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device=device, dtype=dtype, memory_format=layout)
    return model.eval().requires_grad_(False)


def synthesize_transformer_net(out_path: Path, style: str, seed: int = 0) -> Path:
    """A randomly initialised full-size TransformerNet (fixed seed) saved as safetensors.

    Default initialisation gives outputs near 0, i.e. black images; the last layer is rescaled
    and biased so the synthetic style yields a visible, content-dependent tinted picture."""
    generator = torch.Generator().manual_seed(seed + sum(map(ord, style)))
    model = TransformerNet()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.dim() > 1:  # convolution kernels: He-style scale keeps activations O(1)
                fan_in = tensor[0].numel()
                tensor.copy_(torch.randn(tensor.shape, generator=generator) / fan_in**0.5)
            elif name.endswith("weight"):  # instance-norm gains
                tensor.fill_(1.0)
            else:
                tensor.zero_()
        model.deconv3.conv2d.weight.mul_(40.0)
        tint = SYNTHETIC_TINTS.get(style, (128.0, 128.0, 128.0))
        model.deconv3.conv2d.bias.copy_(torch.tensor(tint))
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    # one metadata key: safetensors writes several in varying order, changing the bytes
    save_file(state, str(out_path), metadata={"synthetic": f"fast_style/{style}"})
    return out_path
