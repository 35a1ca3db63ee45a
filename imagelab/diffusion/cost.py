"""What a diffusion job costs, in the units imagelab.cost keeps rates in, and what would fit.

A job of k images at W x H with n steps costs
  UNet:    n x k x rows x W x H / 1e6 megapixel-steps (rows = 2 under classifier-free guidance)
  decode:  k x W x H / 1e6 megapixels, at the rate of its decoder (`decode_full`, `decode_fast`)
  text:    one text-encoder pass per prompt (two under guidance)
Self-attention grows faster than linearly in the pixels, so rates measured at 512 px
underestimate 1024 px somewhat; the moving average over served requests corrects it, and the
deadline checked before every step and every decode is the backstop.
"""

import dataclasses

from imagelab.cost import Fit, SpeedModel, Work
from imagelab.diffusion.jobs import GenerationJob

UNET = "unet"
TEXT = "text"
LCM_STEPS = 4


def decode_stage(decoder: str) -> str:
    return f"decode_{decoder}"


def unet_rows(job: GenerationJob) -> int:
    """UNet rows per step: the images, and their unconditional twins under guidance."""
    return job.num_images * (2 if job.guidance_scale > 1.0 else 1)


def job_work(job: GenerationJob) -> Work:
    megapixels = job.width * job.height / 1e6
    return Work(
        {
            UNET: job.steps * unet_rows(job) * megapixels,
            decode_stage(job.decoder): job.num_images * megapixels,
            TEXT: 2 if job.guidance_scale > 1.0 else 1,
        }
    )


def what_fits(
    job: GenerationJob, speed: SpeedModel, budget_s: float, schedulers: tuple, min_size_px: int = 64
) -> list[Fit]:
    """Single changes that fit the budget, cheapest to the user's intent first: fewer steps,
    the fast decoder, LCM, fewer images, a smaller size (same aspect ratio)."""
    fits = []

    def fits_with(**changes) -> float | None:
        try:
            variant = dataclasses.replace(job, **changes)
        except ValueError:
            return None
        if not all(speed.knows(stage) for stage in job_work(variant).units):
            return None
        estimate_s = speed.estimate_s(job_work(variant))
        return estimate_s if estimate_s <= budget_s else None

    per_step_s = speed.rate(UNET) * unet_rows(job) * job.width * job.height / 1e6
    fixed_s = speed.estimate_s(job_work(job)) - per_step_s * job.steps
    max_steps = int((budget_s - fixed_s) // per_step_s) if per_step_s > 0 else job.steps
    if 1 <= max_steps < job.steps:
        fits.append(Fit({"steps": max_steps}, fixed_s + per_step_s * max_steps))
    if job.decoder != "fast" and (estimate_s := fits_with(decoder="fast")) is not None:
        fits.append(Fit({"decoder": "fast"}, estimate_s))
    if job.scheduler != "lcm" and "lcm" in schedulers:
        lcm = {"scheduler": "lcm", "steps": min(job.steps, LCM_STEPS), "guidance_scale": 1.0}
        if (estimate_s := fits_with(**lcm)) is not None:
            fits.append(Fit({"scheduler": "lcm", "steps": lcm["steps"], "guidance": 1.0}, estimate_s))
    for num_images in range(job.num_images - 1, 0, -1):
        if (estimate_s := fits_with(num_images=num_images)) is not None:
            fits.append(Fit({"num_images": num_images}, estimate_s))
            break
    longest_px = max(job.width, job.height)
    for side_px in range(longest_px - 8, min_size_px - 1, -8):
        width = max(min_size_px, round(job.width * side_px / longest_px / 8) * 8)
        height = max(min_size_px, round(job.height * side_px / longest_px / 8) * 8)
        if (estimate_s := fits_with(width=width, height=height)) is not None:
            fits.append(Fit({"width": width, "height": height}, estimate_s))
            break
    return fits
