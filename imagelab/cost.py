"""A worker's own estimate of what a request will cost in seconds, and admission against a budget.

Each worker times a short call of every stage at start-up (`calibrate`) and then keeps the rate
current from the requests it serves (`observe`, an exponentially weighted moving average), so
the estimate follows the machine it runs on, its thread count and its neighbours' load.
A rate is seconds per unit of work; the units are chosen per stage so that cost is close to
linear in them: megapixel-steps for a UNet (image megapixels x UNet rows x steps), megapixels
for a decoder or a style network, calls for a text encoder. Pure Python: no torch here.
"""

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

# Weight of the newest measurement in the moving average: about the last five requests count.
DEFAULT_SMOOTHING = 0.3
# A served call much smaller than the calibration call is mostly fixed per-call overhead, not
# work in proportion to its units (a 16x1 px image took as long as a 64 px one): its rate
# would make the next large request look thousands of times dearer. Such calls are not folded in.
MIN_OBSERVED_SHARE = 0.25


@dataclass(frozen=True)
class Work:
    """Units of work per stage for one request, e.g. {"unet": 12.3, "decode_full": 0.26}."""

    units: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self):
        for stage, amount in self.units.items():
            if not (math.isfinite(amount) and amount >= 0):
                raise ValueError(f"work of stage {stage!r} must be a finite amount >= 0, got {amount}")
        object.__setattr__(self, "units", MappingProxyType(dict(self.units)))

    def __add__(self, other: "Work") -> "Work":
        stages = set(self.units) | set(other.units)
        return Work({s: self.units.get(s, 0.0) + other.units.get(s, 0.0) for s in stages})


class Fit(NamedTuple):
    """One change to a refused job that brings it under the budget."""

    changes: dict  # request field -> value, e.g. {"steps": 12}
    estimated_s: float

    def describe(self) -> str:
        fields = ", ".join(f"{name}={value}" for name, value in self.changes.items())
        return f"{fields} (~{self.estimated_s:.0f} s)"


class SpeedModel:
    """Seconds per unit of work, per stage. Thread-safe (streams call back from other threads).

    `pinned` rates are fixed (an operator's choice, or a test's for deterministic admission):
    calibration and observations leave them alone.
    """

    def __init__(self, smoothing: float = DEFAULT_SMOOTHING, pinned: Mapping[str, float] | None = None):
        if not 0.0 < smoothing <= 1.0:
            raise ValueError(f"smoothing must be in (0, 1], got {smoothing}")
        self.smoothing = smoothing
        self._rates: dict[str, float] = {}
        self._observations: dict[str, int] = {}
        self._min_observed_units: dict[str, float] = {}
        self._pinned = frozenset(pinned or {})
        self._lock = threading.Lock()
        for stage, rate in (pinned or {}).items():
            if not (math.isfinite(rate) and rate > 0):
                raise ValueError(f"pinned rate of {stage!r} must be positive seconds per unit, got {rate}")
            self._rates[stage] = float(rate)

    def calibrate(self, stage: str, seconds: float, units: float) -> None:
        """Set the rate from a timed start-up call of `units` work that took `seconds`."""
        if stage in self._pinned:
            return
        with self._lock:
            self._rates[stage] = _rate(stage, seconds, units)
            self._min_observed_units[stage] = units * MIN_OBSERVED_SHARE

    def observe(self, stage: str, seconds: float, units: float) -> None:
        """Fold a served request's measured time into the moving average."""
        if stage in self._pinned or units <= 0 or units < self._min_observed_units.get(stage, 0.0):
            return
        measured = _rate(stage, seconds, units)
        with self._lock:
            previous = self._rates.get(stage)
            self._rates[stage] = measured if previous is None else previous + self.smoothing * (measured - previous)
            self._observations[stage] = self._observations.get(stage, 0) + 1

    def rate(self, stage: str) -> float:
        with self._lock:
            if stage not in self._rates:
                raise KeyError(f"no rate for stage {stage!r}; calibrated: {sorted(self._rates)}")
            return self._rates[stage]

    def is_pinned(self, stage: str) -> bool:
        return stage in self._pinned

    def observations(self, stage: str) -> int:
        """How many served requests have refined `stage`'s rate since its calibration."""
        with self._lock:
            return self._observations.get(stage, 0)

    def knows(self, stage: str) -> bool:
        return stage in self._rates

    def estimate_s(self, work: Work) -> float:
        return sum(self.rate(stage) * units for stage, units in work.units.items() if units)

    def describe(self) -> dict:
        """Per stage: seconds per unit, and how many served requests refined it."""
        with self._lock:
            return {
                stage: {
                    "s_per_unit": round(rate, 6),
                    "observations": self._observations.get(stage, 0),
                    "pinned": stage in self._pinned,
                }
                for stage, rate in sorted(self._rates.items())
            }


def _rate(stage: str, seconds: float, units: float) -> float:
    if not (units > 0 and math.isfinite(seconds) and seconds >= 0):
        raise ValueError(f"stage {stage!r}: need units > 0 and seconds >= 0, got {units} units in {seconds} s")
    return max(seconds, 1e-6) / units


@dataclass(frozen=True)
class BatchAdmission:
    """Which requests of a batch run now, which wait, and when the worker expects to be free."""

    admitted: list[int]
    deferred: list[int]
    admitted_s: float  # estimated seconds of the admitted requests
    retry_after_s: int  # whole seconds, as the Retry-After header wants


def admit_batch(estimates_s: Sequence[float], budget_s: float) -> BatchAdmission:
    """Admit requests in batch order while their summed estimate fits the budget; a request
    that would overrun it is deferred (a later, cheaper one may still fit).

    Every request is assumed to fit alone (the caller refuses those that do not before this);
    the first one is always admitted, so a batch never waits on itself.
    """
    admitted, deferred, total_s = [], [], 0.0
    for index, estimate_s in enumerate(estimates_s):
        if not admitted or total_s + estimate_s <= budget_s:
            admitted.append(index)
            total_s += estimate_s
        else:
            deferred.append(index)
    return BatchAdmission(admitted, deferred, total_s, max(1, math.ceil(total_s)))
