"""Run a TransformerNet over PIL images: 0-255 tensors, padding to its size multiple."""

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from imagelab.fast_style.transformer_net import SIZE_MULTIPLE, TransformerNet

MIN_SIDE_PX = 8


def images_to_batch(images: list) -> torch.Tensor:
    """Same-size RGB PIL images -> (B, 3, H, W) float32 in 0-255."""
    array = np.stack([np.asarray(im, dtype=np.uint8) for im in images])  # (B, H, W, 3)
    return torch.from_numpy(array).permute(0, 3, 1, 2).float()


def batch_to_images(batch: torch.Tensor) -> list:
    """(B, 3, H, W) 0-255 -> RGB PIL images, clamped and rounded."""
    array = batch.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(a, mode="RGB") for a in array]


@torch.inference_mode()
def stylize(model: TransformerNet, batch: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) 0-255 -> the same shape. Sizes that are not a multiple of 4 are
    reflection-padded up and cropped back, so any image size works."""
    height, width = batch.shape[-2:]
    pad_h = _padded(height) - height
    pad_w = _padded(width) - width
    if pad_h or pad_w:
        # reflect needs pad < size; replicate covers the few-pixel images
        mode = "reflect" if pad_h < height and pad_w < width else "replicate"
        batch = F.pad(batch, (0, pad_w, 0, pad_h), mode=mode)
    parameter = next(model.parameters())  # conv1's kernel: the network's device, dtype and layout
    layout = torch.channels_last if _is_channels_last(parameter) else torch.contiguous_format
    batch = batch.to(device=parameter.device, dtype=parameter.dtype, memory_format=layout)
    out = model(batch)
    return out[..., :height, :width].float()  # fp32 0-255 whatever the network ran in


def inference_path(model: TransformerNet) -> str:
    """How `stylize` runs `model`, for logs and describe: e.g. "bfloat16 channels_last on cpu"."""
    parameter = next(model.parameters())
    layout = "channels_last" if _is_channels_last(parameter) else "nchw"
    return f"{str(parameter.dtype).removeprefix('torch.')} {layout} on {parameter.device}"


def _is_channels_last(kernel: torch.Tensor) -> bool:
    return not kernel.is_contiguous() and kernel.is_contiguous(memory_format=torch.channels_last)


def _padded(size: int) -> int:
    """Up to a multiple of 4, and at least 8: the 9x9 reflection pad needs 5 px."""
    return max(MIN_SIDE_PX, -(-size // SIZE_MULTIPLE) * SIZE_MULTIPLE)
