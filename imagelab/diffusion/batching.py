"""Batch invariance: a job's image must not depend on what shares its pipeline call.

Same seed and settings give the same image alone or batched only if every tensor op computes
each row the same way whatever the batch size. On CPU that does not hold (measured with torch
2.14, oneDNN/MKL, one thread): a 3x3 convolution with 4 input channels gives different bits
for batch 1 than for batch >= 2, and a 128x128 Linear (the UNet's time embedding) differs
between 2 and 8 rows; the differences (~1e-6 per step) flip a few uint8 pixels by 1. GEMM
and convolution kernels choose their blocking, and so their summation order, from the shapes.

So, inside one pipeline call, the UNet runs once per image on exactly the rows that image
would have alone (the image and, under classifier-free guidance, its unconditional twin), and
the VAE decodes one image at a time. Per image, not per job: image i of a k-image job must equal
the single image of seed + i (GenerationJob), and a batch of 2k rows is not computed as k
batches of 2 (seen: one level off in 8 bits at 2 threads, on a loaded machine). Text encoding is per job too (engine). Everything else in
the denoising loop (scheduler steps, guidance) is elementwise and hence row-independent; noise
comes from one torch.Generator per image.
"""

import contextlib
from collections.abc import Callable, Iterator, Sequence

import torch


def _span_rows(spans: Sequence[tuple[int, int]], num_images: int, batch_rows: int) -> list[torch.Tensor]:
    """Row indices of each span in the UNet batch: with guidance the batch is [uncond; cond]."""
    copies = batch_rows // num_images  # 2 with classifier-free guidance, else 1
    if copies * num_images != batch_rows:
        raise ValueError(f"UNet batch of {batch_rows} rows does not hold {num_images} images")
    return [
        torch.cat([torch.arange(start, stop) + copy * num_images for copy in range(copies)]) for start, stop in spans
    ]


@contextlib.contextmanager
def per_span_unet_calls(
    unet: torch.nn.Module,
    spans: Sequence[tuple[int, int]],
    on_rows: Callable[[torch.Tensor], None] | None = None,
) -> Iterator[None]:
    """Within the block, `unet(...)` runs once per span and stitches the outputs together.

    `spans` are [start, stop) image rows (the engine passes one per image), covering
    0..num_images in order. `on_rows(rows)` hears which rows of the pipeline's UNet batch each
    call computes, before it runs (mixed_lora.MixedLoraRows.select_rows).
    """
    num_images = spans[-1][1]
    unet_forward = unet.forward
    own_forward = unet.__dict__.get("forward")  # e.g. an accelerate offload hook

    def forward(sample, timestep, encoder_hidden_states, *args, return_dict=True, **kwargs):
        batch_rows = sample.shape[0]
        timestep_cond = kwargs.pop("timestep_cond", None)
        noise_pred = torch.empty_like(sample)
        for rows in _span_rows(spans, num_images, batch_rows):
            rows = rows.to(sample.device)
            if on_rows is not None:
                on_rows(rows)
            job_timestep = timestep
            if torch.is_tensor(timestep) and timestep.ndim > 0 and timestep.shape[0] == batch_rows:
                job_timestep = timestep[rows]
            job_cond = timestep_cond
            if timestep_cond is not None and timestep_cond.shape[0] == batch_rows:
                job_cond = timestep_cond[rows]
            out = unet_forward(
                sample[rows],
                job_timestep,
                encoder_hidden_states[rows],
                *args,
                timestep_cond=job_cond,
                return_dict=False,
                **kwargs,
            )[0]
            noise_pred[rows] = out
        if return_dict:
            from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

            return UNet2DConditionOutput(sample=noise_pred)
        return (noise_pred,)

    unet.forward = forward
    try:
        yield
    finally:
        if own_forward is None:
            del unet.forward  # back to the class method
        else:
            unet.forward = own_forward
