"""TransformerNet checkpoints as pytorch/examples publishes them, for the full-size test tier.

TransformerNet has one size, so `synthesize_transformer_net` already makes it at full size; what
the real `candy.pth` ... `udnie.pth` add is the file format: a pickled state dict saved before
PyTorch 0.4, which still carries InstanceNorm `running_mean` / `running_var` keys that
`load_transformer_net` must drop.
"""

import tempfile
from pathlib import Path

import torch

from imagelab.fast_style.transformer_net import TransformerNet
from imagelab.fast_style.weights import synthesize_transformer_net
from imagelab.weights_io import read_state_dict


def synthesize_examples_checkpoint(out_path: str | Path, style: str, seed: int = 0) -> Path:
    """Write `{style}.pth` in the pytorch/examples layout, stale InstanceNorm statistics included."""
    out_path = Path(out_path)
    if out_path.suffix != ".pth":
        raise ValueError(f"out_path must end in .pth (pytorch/examples' format), got {out_path.name}")
    with tempfile.TemporaryDirectory() as scratch:
        state = read_state_dict(synthesize_transformer_net(Path(scratch) / "net.safetensors", style, seed))
    for name, module in TransformerNet().named_modules():
        if isinstance(module, torch.nn.InstanceNorm2d):
            state[f"{name}.running_mean"] = torch.zeros(module.num_features)
            state[f"{name}.running_var"] = torch.ones(module.num_features)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, out_path)
    return out_path
