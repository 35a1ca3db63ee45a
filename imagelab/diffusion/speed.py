"""Start-up calibration of a diffusion engine: one short timed call of each stage at a small
size feeds imagelab.cost.SpeedModel; served requests refine it (`observe_generation`).

On full-size SD 1.5 the UNet is timed at 256 px (a quarter of the 512 px call) and the decoders
at 128 px (convolutions, linear in the pixels; the full VAE at 256 px would cost seconds per
call where it has no native bf16), so calibrating costs a few seconds; each stage runs once
untimed first, since oneDNN builds its kernels on the first call of a shape.
"""

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from imagelab.cost import SpeedModel, Work
from imagelab.diffusion.cost import TEXT, UNET, decode_stage, job_work
from imagelab.diffusion.jobs import GenerationJob, GenerationResult, group_jobs


@dataclass(frozen=True)
class Calibration:
    size_px: int
    seconds: dict  # stage -> measured seconds of its timed call


def calibration_size_px(native_size_px: int, min_size_px: int) -> int:
    return max(min_size_px, (native_size_px // 2) // 8 * 8)


def _timed(call, repeats: int = 2) -> float:
    """Best of `repeats` timed calls after one warm-up (first-call kernel selection is not the
    steady cost; the best, because a neighbour's burst on a shared machine is not ours)."""
    call()
    best_s = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        best_s = min(best_s, time.perf_counter() - started)
    return best_s


def calibrate_engine(engine, speed: SpeedModel, size_px: int) -> Calibration:
    """Time one UNet row at `size_px`, one decode per decoder at half of it (latents at least
    8 wide) and one text-encoder pass."""
    pipe = engine.pipe
    unet = pipe.unet
    latent_px = size_px // pipe.vae_scale_factor
    generator = torch.Generator("cpu").manual_seed(0)
    latents = torch.randn((1, unet.config.in_channels, latent_px, latent_px), generator=generator)
    latents = latents.to(pipe.device, unet.dtype)
    context = torch.zeros((1, pipe.tokenizer.model_max_length, unet.config.cross_attention_dim))
    context = context.to(pipe.device, unet.dtype)
    timestep = torch.tensor([500], device=pipe.device)
    tokens = pipe.tokenizer("", padding="max_length", return_tensors="pt").input_ids.to(pipe.device)
    megapixels = size_px * size_px / 1e6
    decode_px = max(size_px // 2, 8 * pipe.vae_scale_factor)
    decode_latents = latents[..., : decode_px // pipe.vae_scale_factor, : decode_px // pipe.vae_scale_factor]
    seconds = {}
    with torch.inference_mode():
        seconds[UNET] = _timed(lambda: unet(latents, timestep, context, return_dict=False), repeats=1)
        speed.calibrate(UNET, seconds[UNET], megapixels)
        for name in engine.decoders.names:
            stage = decode_stage(name)
            seconds[stage] = _timed(lambda name=name: engine.decoders.decode(decode_latents, name), repeats=1)
            speed.calibrate(stage, seconds[stage], decode_px * decode_px / 1e6)
        seconds[TEXT] = _timed(lambda: pipe.text_encoder(tokens))
        speed.calibrate(TEXT, seconds[TEXT], 1)
    return Calibration(size_px, seconds)


def observe_generation(speed: SpeedModel, jobs: Sequence[GenerationJob], results: Sequence) -> None:
    """Fold each group's measured stage times into the rates. A group's jobs share its text and
    denoise times; a job's `decode` time counts its own decode and its predecessors' in the
    group (engine), so the group's last finished job times the decodes of the jobs up to it.
    Failed jobs (no GenerationResult) time nothing. Jobs of a mixed-style call (batch_styles)
    share one group whatever their styles, as the engine grouped them."""
    mixed = any(isinstance(r, GenerationResult) and r.batch_styles for r in results)
    for key, indices in group_jobs(list(jobs), mix_styles=mixed).items():
        finished = [p for p, i in enumerate(indices) if isinstance(results[i], GenerationResult)]
        if not finished:
            continue
        timings_ms = results[indices[finished[-1]]].timings_ms
        group = _work_of([jobs[i] for i in indices])
        decoded = _work_of([jobs[i] for i in indices[: finished[-1] + 1]])
        decode = decode_stage(key.decoder)
        for stage, timing, work in (
            (UNET, "denoise", group),
            (TEXT, "text_encode", group),
            (decode, "decode", decoded),
        ):
            if timing in timings_ms and work.units.get(stage):
                speed.observe(stage, timings_ms[timing] / 1e3, work.units[stage])


def _work_of(jobs: Sequence[GenerationJob]) -> Work:
    return sum((job_work(job) for job in jobs[1:]), job_work(jobs[0]))
