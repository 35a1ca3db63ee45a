"""Live previews of the image being denoised: a linear latent -> RGB projection fitted to the
pipeline's own VAE.

Why a fitted projection and not TAESD (decoders.py): a preview must cost next to nothing per
step and must look like the VAE's picture whatever weights are installed. Over a latent pixel,
SD's VAE decoder is close to an affine map of the latent's 4 channels to the pixel block's mean
colour (the observation behind the "latent2RGB" previews of A1111 and ComfyUI). Instead of
copying a published coefficient table, the map is fitted once per worker by least squares
against the VAE actually loaded: a few seeded, smooth random latents are decoded, the images
average-pooled back to the latent grid, and `torch.linalg.lstsq` solves
rgb = W @ latent + b. That holds for real SD weights and for the synthetic stand-ins alike,
while TAESD without its real weights is a random-weight stand-in whose previews would be noise.
A preview is then one (3, C) matrix product per latent pixel, a resize to <= 128 px and a
JPEG encode. Measured on the full-size SD 1.5 (random weights, bf16, 2 loaded cores): ~0.5 ms a
preview of a 512 px image, against 1.5 s for TAESD at its smallest useful size (16x16 latents,
128 px) and tens of seconds for the full VAE; the fit (two 128 px decodes) adds a few seconds
to worker start (~15 s with the machine loaded 8x over).
It shows the current latents x_t as they are, so early previews are noisy, as the image is.

Cadence: `preview_due` sends one every ceil(steps / 8) steps and at the last step, so at most
nine previews per image whatever the machine's speed; at that count a time gate would save
nothing (each costs ~1 ms and ~3 KB) and would make the stream depend on timing.
"""

import base64
import io
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

logger = logging.getLogger(__name__)

PREVIEW_MAX_SIDE_PX = 128
PREVIEWS_PER_IMAGE = 8  # plus the last step
PREVIEW_JPEG_QUALITY = 80
FIT_LATENT_PX = 16  # the fit decodes FIT_SAMPLES latents of this side (128 px images for SD 1.5)
FIT_SAMPLES = 2
FIT_MARGIN = 2  # latent pixels left out at each border, where the decoder's padding shows

# decode(latents (n, C, h, w) in the UNet's scaled space) -> images (n, 3, h * f, w * f) in [-1, 1]
Decode = Callable[[torch.Tensor], torch.Tensor]
# progress(job_index, event) as the service streams it
Progress = Callable[[int, dict], None]


def fit_to_vae(decoders) -> "LatentProjection":
    """The projection of an engine's full VAE (`imagelab.diffusion.decoders.Decoders`)."""
    vae = decoders.vae
    return LatentProjection.fit(
        lambda latents: decoders.decode_full(vae, latents.to(vae.device)),
        vae.config.latent_channels,
        decoders.vae_scale_factor,
    )


def smooth_latents(count: int, channels: int, side: int, seed: int) -> torch.Tensor:
    """(count, channels, side, side) normal latents varying over a few latent pixels, as a
    denoised image's do (pure per-pixel noise would fit the decoder's texture response, not
    its colour); each sample at its own scale, each channel at unit standard deviation."""
    generator = torch.Generator("cpu").manual_seed(seed)
    samples = []
    for index in range(count):
        grid = max(2, side >> (index % 3 + 1))  # side/2, side/4, side/8, ...
        coarse = torch.randn(1, channels, grid, grid, generator=generator)
        fine = F.interpolate(coarse, size=(side, side), mode="bilinear", align_corners=False)
        std = fine.std(dim=(2, 3), keepdim=True).clamp_min(1e-6)
        samples.append(fine / std)
    return torch.cat(samples)


@dataclass(frozen=True)
class LatentProjection:
    """rgb = weight @ latent + bias at every latent pixel, rgb in [-1, 1]."""

    weight: torch.Tensor  # (3, C)
    bias: torch.Tensor  # (3,)
    rms_error: float  # of the fit, in [-1, 1] units over the pooled pixels

    @staticmethod
    def fit(
        decode: Decode,
        latent_channels: int,
        vae_scale_factor: int,
        side: int = FIT_LATENT_PX,
        samples: int = FIT_SAMPLES,
        seed: int = 0,
    ) -> "LatentProjection":
        latents = smooth_latents(samples, latent_channels, side, seed)
        with torch.inference_mode():
            images = decode(latents).float()  # (n, 3, side * f, side * f)
        pooled = F.avg_pool2d(images, vae_scale_factor)  # (n, 3, side, side)
        if pooled.shape[-2:] != latents.shape[-2:]:
            raise ValueError(
                f"decoded latents {tuple(latents.shape)} to {tuple(images.shape)}: not {vae_scale_factor}x"
            )
        inner = slice(FIT_MARGIN, side - FIT_MARGIN) if side > 4 * FIT_MARGIN else slice(None)
        x = latents[:, :, inner, inner].permute(0, 2, 3, 1).reshape(-1, latent_channels)  # (pixels, C)
        y = pooled[:, :, inner, inner].permute(0, 2, 3, 1).reshape(-1, 3)  # (pixels, 3)
        design = torch.cat([x, torch.ones(len(x), 1)], dim=1)  # (pixels, C + 1)
        solution = torch.linalg.lstsq(design, y).solution  # (C + 1, 3)
        if not torch.isfinite(solution).all():
            raise ValueError("the preview projection's fit is not finite: the VAE decoded NaN/inf")
        rms = (design @ solution - y).pow(2).mean().sqrt().item()
        return LatentProjection(solution[:-1].T.contiguous(), solution[-1].contiguous(), rms)

    def project(self, latents: torch.Tensor) -> torch.Tensor:
        """(k, C, h, w) latents -> (k, 3, h, w) colours in [-1, 1].

        In NumPy: torch's intra-op threads cost ~70 ms on tensors this small on a loaded
        2-core machine (OpenMP waiting for busy cores), NumPy's single thread ~0.05 ms."""
        x = _float32_array(latents)  # (k, C, h, w)
        rgb = np.tensordot(self.weight.numpy(), x, axes=([1], [1])).transpose(1, 0, 2, 3)  # (k, 3, h, w)
        return torch.from_numpy(np.clip(rgb + self.bias.numpy().reshape(1, 3, 1, 1), -1.0, 1.0))


def _float32_array(tensor: torch.Tensor) -> np.ndarray:
    """A float32 copy in NumPy without a torch kernel (whose threads, see `project`, cost
    more than the preview): bfloat16 is float32's upper 16 bits, widened by a shift."""
    x = tensor.detach().cpu()
    if x.dtype == torch.bfloat16:
        return (x.view(torch.int16).numpy().astype(np.int32) << 16).view(np.float32)
    return x.numpy().astype(np.float32)


@dataclass(frozen=True)
class Preview:
    """One encoded preview: every image of a job, tiled, at most PREVIEW_MAX_SIDE_PX a side."""

    image: str  # base64 of the encoded image
    format: str
    width: int
    height: int

    def as_event(self) -> dict:
        return {"image": self.image, "format": self.format, "width": self.width, "height": self.height}


def preview_due(step: int, of: int) -> bool:
    """Every ceil(of / PREVIEWS_PER_IMAGE) steps, and the last step (steps counted from 1)."""
    return step == of or step % max(1, math.ceil(of / PREVIEWS_PER_IMAGE)) == 0


def render_preview(
    projection: LatentProjection, latents: torch.Tensor, image_side_px: int, max_side_px: int = PREVIEW_MAX_SIDE_PX
) -> Preview:
    """A job's latents (k, C, h, w) -> one JPEG: its k images in a near-square grid, the long
    side at most `max_side_px` and never more than the images themselves (`image_side_px`)."""
    rgb = projection.project(latents).numpy()  # (k, 3, h, w)
    count, _, h, w = rgb.shape
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    grid = np.zeros((rows * h, columns * w, 3), dtype=np.uint8)  # (H, W, 3), empty tiles black
    for index in range(count):
        row, column = divmod(index, columns)
        tile = np.rint((rgb[index].transpose(1, 2, 0) + 1.0) * 127.5).astype(np.uint8)  # (h, w, 3)
        grid[row * h : (row + 1) * h, column * w : (column + 1) * w] = tile
    picture = Image.fromarray(grid, "RGB")
    long_side = min(max_side_px, image_side_px * max(columns, rows))
    scale = long_side / max(picture.size)
    size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    picture = picture.resize(size, Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=PREVIEW_JPEG_QUALITY)
    return Preview(base64.b64encode(buffer.getvalue()).decode("ascii"), "jpeg", picture.width, picture.height)


def progress_with_previews(
    projection: LatentProjection, progress: Progress, wanted: set[int], image_side_px: Callable[[int], int]
) -> Callable[[int, int, int, torch.Tensor], None]:
    """The engine's `on_latents` hook: a progress event per job and step, as without previews,
    and for jobs in `wanted` at the steps `preview_due` picks, a `preview` in the event.
    `image_side_px(job_index)` is the long side of that job's images. A preview that fails is
    logged and left out; it never fails the job."""

    def on_latents(job_index: int, step: int, of: int, latents: torch.Tensor) -> None:
        event = {"step": step, "of": of}
        if job_index in wanted and preview_due(step, of):
            try:
                event["preview"] = render_preview(projection, latents, image_side_px(job_index)).as_event()
            except Exception:
                logger.exception("preview of job %d at step %d failed; sent without it", job_index, step)
        progress(job_index, event)

    return on_latents
