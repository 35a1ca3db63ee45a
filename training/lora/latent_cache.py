"""VAE latents computed once per (image path, resolution, augmentation variant).

The VAE encoder costs about as much as the UNet step it feeds, and its input never changes
for a given image variant, so each variant is encoded once. What is kept is the encoder's
posterior (mean and log-variance, `DiagonalGaussianDistribution.parameters`), not one sample:
each step still draws a fresh latent from it, exactly as uncached training does.

`disk` keeps each posterior as a safetensors file under the run folder (it survives a resume
and costs 4 * 2 * (R/8)^2 * 4 bytes per variant: 32 KiB at 256 px); `memory` keeps them in a
dict for the life of the process (nothing on disk; a resumed run encodes again).
"""

import hashlib
from collections.abc import Callable
from pathlib import Path

import safetensors.torch
import torch


class LatentCache:
    def __init__(self, mode: str, folder: Path | None, namespace: str):
        """`namespace` names what the latents depend on beyond the key (the VAE folder and the
        augmentation settings), so a changed VAE never reads stale latents."""
        if mode not in ("disk", "memory"):
            raise ValueError(f"latent cache mode must be 'disk' or 'memory', got {mode!r}")
        if mode == "disk" and folder is None:
            raise ValueError("a disk latent cache needs a folder")
        self.mode = mode
        self.folder = Path(folder) if folder is not None else None
        self.namespace = namespace
        self.memory: dict[str, torch.Tensor] = {}
        self.hits = self.misses = 0

    def key(self, path: Path, resolution_px: int, variant: int) -> str:
        text = f"{self.namespace}|{Path(path).resolve()}|{resolution_px}|{variant}"
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def get(self, path: Path, resolution_px: int, variant: int, encode: Callable[[], torch.Tensor]) -> torch.Tensor:
        """The cached posterior parameters (2C, h, w), computing them with `encode` on a miss."""
        key = self.key(path, resolution_px, variant)
        if self.mode == "memory" and key in self.memory:
            self.hits += 1
            return self.memory[key]
        file = self.folder / f"{key}.safetensors" if self.mode == "disk" else None
        if file is not None and file.is_file():
            self.hits += 1
            value = safetensors.torch.load_file(str(file))["posterior"]
        else:
            self.misses += 1
            value = encode().detach().float().cpu().contiguous()
            if file is not None:
                file.parent.mkdir(parents=True, exist_ok=True)
                scratch = file.with_suffix(".partial")
                safetensors.torch.save_file({"posterior": value}, str(scratch))
                scratch.replace(file)
        if self.mode == "memory":
            self.memory[key] = value
        return value
