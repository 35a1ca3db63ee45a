"""LoRA without the unfused tax (issue 15.2): fold the active adapters into the UNet's weights
while a group runs, and put the exact base weights back when the next group needs others.

Served unfused, every adapted projection computes `W x + s B (A x)` per step: two extra thin
matmuls and PEFT's Python per layer (measured: a served step 14 % slower than the bare call).
Fused, the layer computes `W' x` with `W' = W + sum_i s_i B_i A_i`, one matmul.

PEFT's own `merge`/`unmerge` adds and later subtracts the delta in the weights' dtype, which in
bf16 does not give the base weights back: swaps would drift. Here the base weights of every
adapted layer are kept (only those layers: the attention projections, a fraction of the UNet),
each fused weight is computed in float32 from them, and restoring copies them back bit-exactly.
The text encoder keeps its adapters unfused (one pass per request, not per step).
"""

import time
from dataclasses import dataclass

import torch
from peft.tuners.lora import LoraLayer


@dataclass(frozen=True)
class FusedAdapters:
    names: tuple[str, ...]
    weights: tuple[float, ...]


class AdapterFuser:
    def __init__(self, unet: torch.nn.Module):
        self.unet = unet
        self.layers = [m for m in unet.modules() if isinstance(m, LoraLayer)]
        self._base = {id(layer): layer.get_base_layer().weight.detach().clone() for layer in self.layers}
        self.fused: FusedAdapters | None = None
        self.swaps = 0
        self.last_swap_s = 0.0

    @torch.no_grad()
    def fuse(self, names: tuple[str, ...], weights: tuple[float, ...]) -> float:
        """Make the UNet compute base + the named adapters at `weights` (as set on the layers
        by set_adapters, whose scale the layers hold), with its adapter layers switched off;
        returns the seconds the swap took (0 when already fused)."""
        self.unet.disable_lora()  # the UNet's PEFT layers pass through to the fused weights
        wanted = FusedAdapters(tuple(names), tuple(float(w) for w in weights))
        if wanted == self.fused:
            return 0.0
        started = time.perf_counter()
        for layer in self.layers:
            base = self._base[id(layer)]
            target = layer.get_base_layer().weight
            present = [name for name in wanted.names if name in layer.lora_A]
            if not present:
                target.copy_(base)
                continue
            fused = base.to(torch.float32, copy=True)  # never in place: base.float() is base in fp32
            for name in present:
                fused += _delta(layer, name)
            target.copy_(fused.to(target.dtype))
        self.fused = wanted
        self.swaps += 1
        self.last_swap_s = time.perf_counter() - started
        return self.last_swap_s

    @torch.no_grad()
    def restore(self) -> float:
        """The exact base weights back (adapters stay disabled: the base model)."""
        if self.fused is None:
            return 0.0
        started = time.perf_counter()
        for layer in self.layers:
            layer.get_base_layer().weight.copy_(self._base[id(layer)])
        self.fused = None
        self.swaps += 1
        self.last_swap_s = time.perf_counter() - started
        return self.last_swap_s


def _delta(layer: LoraLayer, name: str) -> torch.Tensor:
    """s B A in float32 for adapter `name`; s is PEFT's own scaling of the layer (the adapter
    weight x alpha / r, or / sqrt(r) for rsLoRA), the same the unfused forward multiplies by."""
    scale = layer.scaling[name]
    if layer.use_dora.get(name, False):
        raise NotImplementedError(f"adapter {name!r} is DoRA; fusing supports plain LoRA")
    down = layer.lora_A[name].weight.float()
    up = layer.lora_B[name].weight.float()
    if down.dim() == 2:  # Linear: (out, r) @ (r, in)
        return (up @ down) * scale
    # Conv2d (kohya conv LoRAs): 1x1 up after a k x k down -> (out, in, k, k)
    return torch.einsum("or,rikl->oikl", up.flatten(1), down) * scale
