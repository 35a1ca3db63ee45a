"""Cost-aware admission for the services (issue 15.4, 17.2): refuse a request whose estimate
exceeds the time budget with 422 TooExpensive before any work, and run of a batch only what
fits the budget, answering the rest 503 with Retry-After. The estimates are the worker's own
(imagelab.cost.SpeedModel, calibrated at start-up and refined by every served request)."""

import logging
import time
from collections.abc import Callable, Sequence

from handlers.common.errors import Overloaded, TooExpensive
from handlers.common.service import Progress
from imagelab.cost import Fit, SpeedModel, Work, admit_batch
from imagelab.diffusion.cost import UNET, job_work, what_fits
from imagelab.diffusion.speed import calibrate_engine, calibration_size_px, observe_generation

logger = logging.getLogger(__name__)


def refusal(estimate_s: float, budget_s: float, fits: Sequence, field: str, rate_note: str) -> TooExpensive:
    """`fits`: imagelab.diffusion.cost.Fit-like items (`changes`, `estimated_s`, `describe()`)."""
    would_fit = "; ".join(f.describe() for f in fits) or "nothing smaller this model accepts"
    message = (
        f"'{field}': this request would take about {estimate_s:.0f} s on this worker ({rate_note}), "
        f"over its {budget_s:g} s time budget; would fit: {would_fit}"
    )
    body_fits = [{"changes": dict(f.changes), "estimated_s": round(f.estimated_s, 1)} for f in fits]
    return TooExpensive(message, field, estimate_s, budget_s, body_fits)


class Admission:
    """One worker's speed model and time budget."""

    def __init__(self, budget_s: float, pinned_rates: dict | None = None):
        self.budget_s = budget_s
        self.speed = SpeedModel(pinned=pinned_rates)

    def estimate_s(self, work: Work) -> float:
        return self.speed.estimate_s(work)

    def run_within_budget(
        self, requests: list, work_of: Callable[[object], Work], run: Callable[[list, Progress], list], progress
    ) -> list:
        """Run the requests whose summed estimate fits the budget (in batch order) through
        `run(requests, progress)`; the others get 503 with Retry-After."""
        admission = admit_batch([self.estimate_s(work_of(r)) for r in requests], self.budget_s)
        if not admission.deferred:
            return run(requests, progress)
        logger.info(
            "batch of %d: running %s (~%.1f s), deferring %s (over the %g s budget)",
            len(requests),
            admission.admitted,
            admission.admitted_s,
            admission.deferred,
            self.budget_s,
        )
        admitted = admission.admitted
        results = run([requests[i] for i in admitted], lambda position, event: progress(admitted[position], event))
        answers: list = [None] * len(requests)
        for position, index in enumerate(admitted):
            answers[index] = results[position]
        busy = Overloaded(
            f"this worker's batch already holds about {admission.admitted_s:.0f} s of work, and this request "
            f"does not fit its {self.budget_s:g} s budget beside it; retry in {admission.retry_after_s} s",
            retry_after_s=admission.retry_after_s,
        )
        for index in admission.deferred:
            answers[index] = busy
        return answers

    def describe(self) -> dict:
        return {"time_budget_s": self.budget_s, "rates": self.speed.describe()}


class DiffusionAdmission(Admission):
    """Admission for txt2img and animals: calibrated on the engine at start-up, refined by
    every served group, each job estimated with imagelab.diffusion.cost."""

    def __init__(self, engine, budget_s: float, min_size_px: int, pinned_rates: dict | None = None):
        super().__init__(budget_s, pinned_rates)
        self.engine = engine
        self.min_size_px = min_size_px
        self.retimed = False  # whether the start-up rates were re-timed before a first refusal

    def calibrate(self) -> None:
        size_px = calibration_size_px(self.engine.native_size_px, self.min_size_px)
        calibration = calibrate_engine(self.engine, self.speed, size_px)
        logger.info(
            "speed at %d px: %s; now %.3g s per megapixel-step of the UNet",
            size_px,
            ", ".join(f"{stage} {seconds:.3f} s" for stage, seconds in calibration.seconds.items()),
            self.speed.rate("unet"),
        )

    def work_of(self, job) -> Work:
        return job_work(job)

    def check(self, job) -> None:
        """Raise TooExpensive if `job` alone cannot finish within the budget."""
        estimate_s = self.estimate_s(self.work_of(job))
        if estimate_s > self.budget_s and self._start_up_rates_only():
            # The start-up calibration may have run beside other workers loading and hashing
            # gigabytes on the same cores (measured: a 2.5-4x too slow rate, which refused the
            # default txt2img request that then took a third of its budget). Before the first
            # refusal on such rates, time again once (a few seconds at the calibration size).
            self.retimed = True
            logger.info(
                "estimate %.0f s over the %g s budget on start-up rates only: timing again", estimate_s, self.budget_s
            )
            self.calibrate()
            estimate_s = self.estimate_s(self.work_of(job))
        if estimate_s <= self.budget_s:
            return
        fits = what_fits(job, self.speed, self.budget_s, self.engine.schedulers, self.min_size_px)
        note = f"{self.speed.rate(UNET):.3g} s per megapixel-step of the UNet"
        raise refusal(estimate_s, self.budget_s, fits, "steps", note)

    def _start_up_rates_only(self) -> bool:
        """True until a re-time or a served request refined the UNet rate (never for pinned rates)."""
        return not self.retimed and self.speed.observations(UNET) == 0 and not self.speed.is_pinned(UNET)

    def observe(self, jobs: list, outcomes: list) -> None:
        observe_generation(self.speed, jobs, outcomes)

    def describe(self) -> dict:
        described = super().describe()
        described["unet_s_per_megapixel_step"] = round(self.speed.rate("unet"), 6)
        return described


STYLIZE = "stylize"  # seconds per output megapixel through a TransformerNet


class FastStyleAdmission(Admission):
    """Admission for fast_style: one TransformerNet pass costs about the same per pixel for
    every style (same architecture), so one rate serves them all."""

    def calibrate(self, stylize_call: Callable[[int], object], size_px: int = 256) -> None:
        """`stylize_call(size_px)` stylises one square image of that side."""
        stylize_call(size_px)  # warm-up: first-call kernel selection
        started = time.perf_counter()
        stylize_call(size_px)
        seconds = time.perf_counter() - started
        self.speed.calibrate(STYLIZE, seconds, size_px * size_px / 1e6)
        logger.info("speed at %d px: stylize %.3f s; %.3g s per megapixel", size_px, seconds, self.speed.rate(STYLIZE))

    def work_of(self, width: int, height: int) -> Work:
        return Work({STYLIZE: width * height / 1e6})

    def check(self, width: int, height: int, min_side_px: int) -> None:
        """Raise TooExpensive if one width x height image cannot be stylised within the budget."""
        estimate_s = self.estimate_s(self.work_of(width, height))
        if estimate_s <= self.budget_s:
            return
        longest_px = max(width, height)
        fits = []
        for side_px in range(longest_px - 16, min_side_px - 1, -16):
            scale = side_px / longest_px
            fit_s = self.estimate_s(self.work_of(round(width * scale), round(height * scale)))
            if fit_s <= self.budget_s:
                fits = [Fit({"max_side_px": side_px}, fit_s)]
                break
        note = f"{self.speed.rate(STYLIZE):.3g} s per megapixel"
        raise refusal(estimate_s, self.budget_s, fits, "max_side_px", note)

    def observe(self, seconds: float, width: int, height: int, images: int) -> None:
        self.speed.observe(STYLIZE, seconds, images * width * height / 1e6)
