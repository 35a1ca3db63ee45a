"""Stable Diffusion 1.5 at full size with random weights (cost does not depend on weight values):
seconds per UNet step, guided (batch 2 for classifier-free guidance) and unguided (LCM),
fp32 and bf16; achieved GFLOP/s against this machine's matmul peak measured in the same
process; text-encoder and VAE-decode times; and end-to-end times, measured or composed from
the measured parts.

    python -m loadtests.bench.sd15 --out sd15.json [--quick] [--measure-e2e] [--all-bf16] [--no-fast-path]
    (--quick: 256 px, one run each; the fast path's variants, eager vs compiled with compile
    time cold and warm, come from loadtests/bench/sd15_fast_path.py, one process each)
"""

import time

import torch
from diffusers import AutoencoderKL, LCMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from imagelab.diffusion.decoders import synthesize_taesd
from imagelab.diffusion.tiny import SD15_SCHEDULER_CONFIG
from loadtests.bench.measure import PeakRss, count_flops, matmul_peak_gflops, section_parser, time_calls, write_results

VAE_SCALE = 8
TEXT_TOKENS = 77


def sd15_unet() -> UNet2DConditionModel:
    """runwayml/stable-diffusion-v1-5 unet/config.json (860 M parameters)."""
    return UNet2DConditionModel(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=768,
        attention_head_dim=8,
    ).eval()


def sd15_vae() -> AutoencoderKL:
    """SD 1.5 vae/config.json (83 M parameters)."""
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        layers_per_block=2,
        sample_size=512,
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
    ).eval()


def sd15_text_encoder() -> CLIPTextModel:
    """CLIP ViT-L/14's text tower, as SD 1.5 ships it (123 M parameters)."""
    return CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            max_position_embeddings=TEXT_TOKENS,
            hidden_act="quick_gelu",
            projection_dim=768,
        )
    ).eval()


class Sd15:
    def __init__(self, size_px: int):
        torch.manual_seed(0)
        self.unet, self.vae, self.text_encoder = sd15_unet(), sd15_vae(), sd15_text_encoder()
        self.taesd = synthesize_taesd(VAE_SCALE).eval()  # decoder=fast: TAESD's architecture
        self.latent_px = size_px // VAE_SCALE
        self.dtype = torch.float32

    def to(self, dtype: torch.dtype) -> None:
        for module in (self.unet, self.vae, self.text_encoder, self.taesd):
            module.to(dtype)
        self.dtype = dtype

    def unet_call(self, batch: int):
        sample = torch.randn(batch, 4, self.latent_px, self.latent_px, dtype=self.dtype)  # (B, C, h, w)
        context = torch.randn(batch, TEXT_TOKENS, 768, dtype=self.dtype)  # (B, tokens, width)
        timestep = torch.tensor(500)
        return lambda: self.unet(sample, timestep, encoder_hidden_states=context, return_dict=False)

    def text_call(self, batch: int):
        ids = torch.randint(0, 49408, (batch, TEXT_TOKENS), generator=torch.Generator().manual_seed(0))
        return lambda: self.text_encoder(ids)

    def decode_call(self):
        latents = torch.randn(1, 4, self.latent_px, self.latent_px, dtype=self.dtype)
        return lambda: self.vae.decode(latents / self.vae.config.scaling_factor, return_dict=False)

    def taesd_decode_call(self):
        latents = torch.randn(1, 4, self.latent_px, self.latent_px, dtype=self.dtype)
        return lambda: self.taesd.decode(latents, return_dict=False)

    def lcm_image_s(self, steps: int) -> float:
        """One image end to end as the animals model makes it with the LCM scheduler and
        guidance 1 (no CFG): text encoding, `steps` UNet steps, scheduler updates, VAE decode."""
        scheduler = LCMScheduler.from_config(SD15_SCHEDULER_CONFIG)
        generator = torch.Generator().manual_seed(0)
        started = time.perf_counter()
        context = self.text_call(1)()[0]
        scheduler.set_timesteps(steps)
        latents = torch.randn(1, 4, self.latent_px, self.latent_px, generator=generator).to(self.dtype)
        for t in scheduler.timesteps:
            noise = self.unet(latents, t, encoder_hidden_states=context, return_dict=False)[0]
            latents = scheduler.step(noise, t, latents, generator=generator, return_dict=False)[0]
        self.vae.decode(latents / self.vae.config.scaling_factor, return_dict=False)
        return time.perf_counter() - started


def measure_dtype(model: Sd15, runs: int, full: bool, count: bool, guided_only: bool = False) -> dict:
    guided = model.unet_call(batch=2)
    result = {}
    with torch.inference_mode(), PeakRss() as rss:
        if count:  # the FLOP count's call doubles as the warm-up
            result["guided_step_flops"] = count_flops(guided)
        result["guided_step"] = time_calls(guided, runs, warmup=0)
        if not guided_only:
            result["unguided_step"] = time_calls(model.unet_call(batch=1), runs, warmup=1 if full else 0)
            result["text_encode_batch2"] = time_calls(model.text_call(2), 3, warmup=1)
            result["vae_decode"] = time_calls(model.decode_call(), 1, warmup=0)
            result["taesd_decode"] = time_calls(model.taesd_decode_call(), 2, warmup=1)
    result["peak_rss_mib"] = rss.peak_mib
    return result


def main() -> None:
    parser = section_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--measure-e2e",
        action="store_true",
        help="also run one whole LCM 4-step image in float32 (adds about a minute)",
    )
    parser.add_argument(
        "--all-bf16",
        action="store_true",
        help="bf16 for every part, not only the guided step (slow where bf16 is emulated)",
    )
    parser.add_argument(
        "--no-fast-path",
        action="store_true",
        help="skip the fast-path variants (compiled UNet: minutes of compiling per variant)",
    )
    args = parser.parse_args()
    size_px = 256 if args.quick else 512
    runs = 1 if args.quick else 2
    budget_s = 1.0 if args.quick else 3.0
    results = {"size_px": size_px, "quick": args.quick}
    results["matmul_peak"] = [
        matmul_peak_gflops(torch.float32, 2048, budget_s),
        matmul_peak_gflops(torch.bfloat16, 2048, budget_s),
    ]
    started = time.perf_counter()
    model = Sd15(size_px)
    results["build_s"] = time.perf_counter() - started
    results["unet_parameters"] = sum(p.numel() for p in model.unet.parameters())

    results["float32"] = measure_dtype(model, runs, full=not args.quick, count=True)
    if args.measure_e2e:
        with torch.inference_mode():
            results["float32"]["lcm_4_steps_measured_s"] = model.lcm_image_s(4)
    model.to(torch.bfloat16)
    # Where bf16 is emulated (no AVX512-BF16/AMX) a bf16 step at 512 px takes minutes: by default
    # one timed guided step (the first bf16 call, so it includes oneDNN's kernel set-up), for the
    # bf16 peak target.
    results["bfloat16"] = measure_dtype(
        model, runs if args.all_bf16 else 1, full=not args.quick, count=False, guided_only=not args.all_bf16
    )
    results["bfloat16"]["guided_step_flops"] = results["float32"]["guided_step_flops"]
    del model
    if not args.no_fast_path:
        from loadtests.bench.sd15_fast_path import measure_all

        results["fast_path"] = measure_all(size_px, runs)
    write_results(args.out, results)


if __name__ == "__main__":
    main()
