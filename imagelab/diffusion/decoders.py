"""Latents -> images: the SD VAE (`full`) or TAESD (`fast`, Bohan Ou's tiny autoencoder,
madebyollin/taesd, diffusers AutoencoderTiny), chosen per request.

The full VAE's decoder costs about as much as three UNet steps at 512 px on a CPU; TAESD's
decoder is ~0.14 TFLOP at 512 px (counted by hand: 64-channel 3x3 convolutions up to full
resolution), several times cheaper, at some loss of fine detail. The full VAE runs channels_last in the
pipeline's dtype, and past `TILED_ABOVE_PX` it decodes in overlapping 512 px tiles
(AutoencoderKL.tiled_decode) so its activations stay bounded whatever the image size.
Without real TAESD weights a random-weight AutoencoderTiny of the real architecture stands in
(fixed seed; same cost, meaningless pictures), and `synthetic` says so.
`decode_safely` is the engine's decode: it refuses NaN/inf and redoes a full decode that
overflowed in float16/bfloat16 with a float32 copy of the VAE.
"""

import copy
import logging
import math
from pathlib import Path

import torch
from diffusers import AutoencoderKL, AutoencoderTiny

from imagelab.diffusion.jobs import NonFiniteImageError

logger = logging.getLogger(__name__)

TILED_ABOVE_PX = 768  # image side past which the full VAE decodes in tiles
TAESD_FILES = ("config.json", "diffusion_pytorch_model.safetensors")  # madebyollin/taesd


def synthesize_taesd(vae_scale_factor: int, seed: int = 0) -> AutoencoderTiny:
    """TAESD's architecture (64 channels, blocks (1,3,3,3)/(3,3,3,1)) with one stage per factor
    of 2 of the VAE's downsampling: 4 for SD 1.5 (8x), 2 for the tiny model (2x)."""
    stages = int(math.log2(vae_scale_factor)) + 1
    if 2 ** (stages - 1) != vae_scale_factor:
        raise ValueError(f"the VAE scale factor must be a power of 2, got {vae_scale_factor}")
    torch.manual_seed(seed)
    return AutoencoderTiny(
        encoder_block_out_channels=(64,) * stages,
        decoder_block_out_channels=(64,) * stages,
        num_encoder_blocks=(1,) + (3,) * (stages - 1),
        num_decoder_blocks=(3,) * (stages - 1) + (1,),
    )


def load_taesd(folder: Path) -> AutoencoderTiny:
    return AutoencoderTiny.from_pretrained(str(folder), local_files_only=True, use_safetensors=True)


class Decoders:
    """`decode(latents, name)`: (1, C, h, w) UNet latents -> (1, 3, H, W) image in [-1, 1]."""

    names = ("full", "fast")

    def __init__(self, vae: AutoencoderKL, vae_scale_factor: int, taesd_dir: Path | None = None):
        self.vae = vae.to(memory_format=torch.channels_last)
        self.vae_scale_factor = vae_scale_factor
        if taesd_dir is not None and (Path(taesd_dir) / "config.json").is_file():
            taesd, self.synthetic = load_taesd(Path(taesd_dir)), False
        else:
            taesd, self.synthetic = synthesize_taesd(vae_scale_factor), True
        stages = len(taesd.config.decoder_block_out_channels)
        if 2 ** (stages - 1) != vae_scale_factor:
            raise ValueError(f"TAESD at {taesd_dir} upsamples {2 ** (stages - 1)}x; the VAE needs {vae_scale_factor}x")
        self.taesd = taesd.to(vae.device, vae.dtype, memory_format=torch.channels_last).eval()
        logger.info(
            "decoders: full VAE (%s, channels_last, tiled past %d px), fast TAESD: %s",
            vae.dtype,
            TILED_ABOVE_PX,
            "TINY SYNTHETIC stand-in (random weights)" if self.synthetic else f"real ({taesd_dir})",
        )
        self.vae_fp32: AutoencoderKL | None = None  # made on the first non-finite full decode
        self.vae_fp32_retries = 0

    def decode(self, latents: torch.Tensor, name: str) -> torch.Tensor:
        if name == "fast":
            taesd = self.taesd
            # TAESD was trained on the UNet's scaled latents: its scaling_factor is 1.
            return taesd.decode(latents.to(taesd.dtype) / taesd.config.scaling_factor, return_dict=False)[0]
        if name != "full":
            raise ValueError(f"decoder must be one of {self.names}, got {name!r}")
        return self.decode_full(self.vae, latents)

    def decode_full(self, vae: AutoencoderKL, latents: torch.Tensor) -> torch.Tensor:
        """Through `vae` (the pipeline's, or a float32 copy for a retry)."""
        latents = latents.to(vae.dtype) / vae.config.scaling_factor
        if max(latents.shape[-2:]) * self.vae_scale_factor > TILED_ABOVE_PX:
            return vae.tiled_decode(latents, return_dict=False)[0]
        return vae.decode(latents, return_dict=False)[0]

    def decode_safely(self, latents: torch.Tensor, name: str = "full") -> tuple[torch.Tensor, bool]:
        """Decode one image (1, C, h, w) -> (1, 3, H, W) in [-1, 1]; returns (image, retried_in_fp32).

        A float16 VAE can overflow to NaN (SD 1.5's VAE is known to), which would come out as a
        black image; such decodes are redone in float32 with a lazily made float32 VAE copy.
        """
        if not torch.isfinite(latents).all():
            raise NonFiniteImageError("the denoised latents hold NaN/inf; no decode can fix that")
        if name == "fast":
            image = self.decode(latents, "fast")
            if not torch.isfinite(image).all():
                raise NonFiniteImageError("the fast decoder (TAESD) gave NaN/inf")
            return image, False
        image = self.decode_full(self.vae, latents)
        if torch.isfinite(image).all():
            return image, False
        if self.vae.dtype == torch.float32:
            raise NonFiniteImageError("the VAE decode gave NaN/inf in float32")
        if self.vae_fp32 is None:
            self.vae_fp32 = copy.deepcopy(self.vae).to(torch.float32)
        image = self.decode_full(self.vae_fp32, latents.float())
        if not torch.isfinite(image).all():
            raise NonFiniteImageError("the VAE decode gave NaN/inf even in float32")
        self.vae_fp32_retries += 1
        return image, True
