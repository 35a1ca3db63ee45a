"""How many Gatys steps fit a time budget on this machine (issue 16.3): measure the step rate
once at a small size, scale it by pixels, and pick the default step count so that a request
with the default steps finishes untruncated within its budget."""

import math
import time
from typing import NamedTuple

from PIL import Image

from imagelab.neural_style.config import STEPS_RANGE, NeuralStyleConfig
from imagelab.neural_style.gatys import transfer
from imagelab.neural_style.vgg import VGG19Features

# Share of the budget the steps may plan on: the measured rate is of a quiet moment at a small
# size, and a loaded machine or a larger image's cache misses run slower.
BUDGET_MARGIN = 0.8
# Forward-only passes around the steps, in step units (a step is a forward and a backward,
# ~3 forwards): the content and style targets and the last update's evaluation, rounded up.
OVERHEAD_STEPS = 2


class StepSpeed(NamedTuple):
    """One measured rate: seconds per optimisation step per megapixel of the content."""

    seconds_per_megapixel_step: float
    measured_at_px: int

    def seconds_per_step(self, side_px: int) -> float:
        """At a square side_px image, the most pixels a max_side_px of side_px gives."""
        return self.seconds_per_megapixel_step * side_px * side_px / 1e6

    def steps_per_s(self, side_px: int) -> float:
        return 1.0 / self.seconds_per_step(side_px)


def default_steps(seconds_per_step: float, budget_s: float, ceiling: int) -> int:
    """The most steps (at most `ceiling`, at least 1) that, with the forward-only overhead,
    take at most BUDGET_MARGIN of `budget_s` at `seconds_per_step`."""
    if not seconds_per_step > 0 or not budget_s > 0:
        raise ValueError(f"seconds_per_step and budget_s must be positive, got {seconds_per_step}, {budget_s}")
    fitting = math.floor(budget_s * BUDGET_MARGIN / seconds_per_step) - OVERHEAD_STEPS
    return max(STEPS_RANGE[0], min(ceiling, fitting))


def measure_step_speed(features: VGG19Features, side_px: int = 128, steps: int = 4) -> StepSpeed:
    """Time `steps` L-BFGS steps of `transfer` on a side_px square pair; the first step (kernel
    selection, allocations) and the forward-only targets are left out of the rate."""
    if steps < 2:
        raise ValueError(f"steps must be at least 2 (the first one is a warm-up), got {steps}")
    stamps: list[float] = []
    content = Image.radial_gradient("L").resize((side_px, side_px)).convert("RGB")
    style_image = Image.effect_noise((side_px, side_px), 64).convert("RGB")
    config = NeuralStyleConfig(steps=steps, max_side_px=side_px)
    transfer(content, style_image, config, features, on_step=lambda *_: stamps.append(time.perf_counter()))
    seconds_per_step = (stamps[-1] - stamps[0]) / (len(stamps) - 1)
    return StepSpeed(seconds_per_step / (side_px * side_px / 1e6), side_px)
