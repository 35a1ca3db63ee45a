"""Learning-rate schedules as LambdaLR multipliers: linear warm-up, then constant or cosine
decay to zero (the schedules of diffusers' `get_scheduler`, without the dependency on
its optimization module)."""

import math

import torch

LR_SCHEDULES = ("constant", "cosine")


def lr_multiplier(step: int, schedule: str, warmup_steps: int, total_steps: int) -> float:
    """Multiplier of the base learning rate for optimizer step `step` (0-based)."""
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"schedule must be one of {list(LR_SCHEDULES)}, got {schedule!r}")
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def make_lr_scheduler(
    optimizer: torch.optim.Optimizer, schedule: str, warmup_steps: int, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_multiplier(step, schedule, warmup_steps, total_steps)
    )
