"""Safe state-dict reading for every capability: safetensors, or torch.load with
weights_only=True, which refuses the arbitrary pickled code a hostile .pth can carry."""

import hashlib
from pathlib import Path

import torch
from safetensors.torch import load_file

STATE_DICT_SUFFIXES = (".safetensors", ".pth", ".pt")


def read_state_dict(path: Path) -> dict:
    path = Path(path)
    if path.suffix == ".safetensors":
        return load_file(str(path), device="cpu")
    if path.suffix in (".pth", ".pt"):
        state = torch.load(str(path), map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]  # checkpoints that wrap the weights
        if not isinstance(state, dict):
            raise ValueError(f"{path} does not hold a state dict")
        return state
    raise ValueError(f"{path}: weight files must end in {', '.join(STATE_DICT_SUFFIXES)}")


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks (weights run to gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
