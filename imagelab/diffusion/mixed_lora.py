"""Mixed-style batches (issue 19.2): rows of one UNet call with different LoRAs and scales.

Each adapted UNet layer computes the base output `W x` for every row, then adds, per adapter
used in the call, `s_row * alpha / r * B (A x_rows)` on the rows that use it: x gathered by
row, two thin matmuls, scattered back with `index_add_` (the gathered form of Punica/S-LoRA's
SGMV, Chen et al. 2023, Sheng et al. 2023, as plain torch ops). A row may carry several
adapters (a style and the LCM-LoRA), each at its own scale; a row with none gets exactly the
base layer's output.

Why not PEFT's mixed-batch forward (`adapter_names=` in `LoraLayer.forward`, peft 0.21): it
takes one adapter per row at the adapter's one scale (`layer.scaling`), so neither a style at
two scales in one call nor a style with the LCM-LoRA on the same row, and a diffusers UNet
never passes `adapter_names` down to its layers (PEFT's own models do it with pre-forward hooks).

The PEFT layers must be switched off while a call runs (`unet.disable_lora()`: they then return
the base layer's output) and the weights must be the base ones, not fused (fuse.py): the engine
does both. The row -> image map follows the UNet batch layout of diffusers' pipeline, images
then, under classifier-free guidance, the same images again ([uncond; cond]): row r is image
r mod n. `select_rows` is told which rows of that batch each UNet call computes
(batching.per_span_unet_calls), so per-image calls (batch_invariant) and one call for the whole
batch use the same map.
"""

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import torch
from peft.tuners.lora import LoraLayer

AdapterSet = tuple[tuple[str, float], ...]  # (PEFT adapter name, weight) per adapter; () is the base


class _AdapterRows(NamedTuple):
    """One adapter's rows in the running UNet call: positions in its batch (None: every row)
    and their weight: one number when they share it, else one per row."""

    name: str
    positions: torch.Tensor | None
    weight: float | torch.Tensor  # a tensor (rows,) float32 only when the rows' weights differ


class MixedLoraRows:
    """Per-row LoRA deltas on the UNet's PEFT layers for one pipeline call of `image_adapters`
    (one AdapterSet per image, in the batch's image order)."""

    def __init__(self, unet: torch.nn.Module, image_adapters: Sequence[AdapterSet]):
        self.layers = [m for m in unet.modules() if isinstance(m, LoraLayer)]
        self.image_adapters = [tuple(adapters) for adapters in image_adapters]
        self.num_images = len(self.image_adapters)
        self.unet_calls = 0  # UNet forward calls of the pipeline call so far
        self._plan: list[_AdapterRows] = []
        self._rows = 0

    @property
    def distinct(self) -> int:
        """Adapter sets (styles at a scale, with or without the LCM-LoRA) among the images."""
        return len(set(self.image_adapters))

    def select_rows(self, rows: torch.Tensor) -> None:
        """The next UNet call computes these rows of the pipeline's batch (row r is image r mod n)."""
        images = (rows % self.num_images).tolist()
        per_adapter: dict[str, tuple[list[int], list[float]]] = {}
        order: dict[str, int] = {}
        for position, image in enumerate(images):
            for index, (name, weight) in enumerate(self.image_adapters[image]):
                positions, weights = per_adapter.setdefault(name, ([], []))
                positions.append(position)
                weights.append(float(weight))
                order.setdefault(name, index)
        device = rows.device
        # Each row adds its adapters in its own order (a style, then the LCM-LoRA), as PEFT's
        # layers do with those adapters set: float sums are not associative.
        self._plan = [
            _AdapterRows(
                name,
                None if len(positions) == len(images) else torch.tensor(positions, device=device),
                weights[0] if len(set(weights)) == 1 else torch.tensor(weights, dtype=torch.float32, device=device),
            )
            for name, (positions, weights) in sorted(per_adapter.items(), key=lambda item: order[item[0]])
        ]
        self._rows = len(images)
        self.unet_calls += 1

    @contextlib.contextmanager
    def active(self) -> Iterator["MixedLoraRows"]:
        """Within the block every adapted layer adds its rows' deltas (forward hooks)."""
        for layer in self.layers:
            if not layer.disable_adapters or layer.merged:
                raise RuntimeError("mixed LoRA rows need the UNet's PEFT layers off and unmerged (disable_lora)")
        handles = [layer.register_forward_hook(self._add_deltas) for layer in self.layers]
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()
            self._plan = []

    def _add_deltas(self, layer: LoraLayer, args: tuple, output: torch.Tensor) -> torch.Tensor:
        if not self._plan:
            return output
        x = args[0]
        if x.shape[0] != self._rows:
            raise RuntimeError(f"a LoRA layer saw {x.shape[0]} rows in a UNet call of {self._rows}")
        for adapter in self._plan:
            if adapter.name not in layer.lora_A:
                continue  # this adapter does not touch this layer
            down, up = layer.lora_A[adapter.name], layer.lora_B[adapter.name]
            rows = x if adapter.positions is None else x.index_select(0, adapter.positions)
            delta = up(down(rows.to(down.weight.dtype)))  # (rows, ..., out) or (rows, out, h, w)
            scale = _scaling(layer, adapter.name, adapter.weight)
            if isinstance(scale, float):  # as PEFT's layers multiply: by a Python number
                delta = delta * scale
            else:
                delta = delta * scale.to(delta.dtype).view(-1, *([1] * (delta.dim() - 1)))
            if adapter.positions is None:
                output.add_(delta.to(output.dtype))
            else:
                output.index_add_(0, adapter.positions, delta.to(output.dtype))
        return output


def _scaling(layer: LoraLayer, name: str, weight: float | torch.Tensor) -> float | torch.Tensor:
    """weight * alpha / r (rsLoRA: / sqrt r), computed as PEFT's LoraLayer.set_scale does."""
    if layer.use_dora.get(name, False) or name in getattr(layer, "lora_variant", {}):
        raise NotImplementedError(f"adapter {name!r} is DoRA or another LoRA variant; mixed rows take plain LoRA")
    rank = layer.r[name]
    return weight * layer.lora_alpha[name] / (math.sqrt(rank) if layer.use_rslora.get(name, False) else rank)
