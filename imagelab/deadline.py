"""A time budget that a batch checks between its stages, server-agnostic.

The server gives a batch one budget (under TorchServe's responseTimeout, so the handler answers
before the frontend kills the worker). The engines check it before each group of jobs, after
each step and before each decode; a stage that finds it spent raises `BudgetSpent`, which fails
only the jobs still waiting for that stage: what finished keeps its result.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field


class BudgetSpent(Exception):
    """The budget ran out before `stage`. `started`: the job had begun (the server answers
    504, it outlived its time) or not (503, the batch's remaining time could not hold it)."""

    def __init__(self, stage: str, started: bool, budget_s: float):
        super().__init__(f"the {budget_s:g} s budget was spent before {stage}")
        self.stage = stage
        self.started = started
        self.budget_s = budget_s


@dataclass(frozen=True)
class Deadline:
    """`budget_s` seconds from `start_s` on `clock` (monotonic by default; tests pass a fake)."""

    budget_s: float
    start_s: float
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)

    @classmethod
    def after(cls, budget_s: float, clock: Callable[[], float] = time.monotonic) -> "Deadline":
        if not budget_s > 0:
            raise ValueError(f"budget_s must be positive, got {budget_s}")
        return cls(budget_s, clock(), clock)

    def remaining_s(self) -> float:
        return self.start_s + self.budget_s - self.clock()

    def spent(self) -> bool:
        return self.remaining_s() <= 0

    def check(self, stage: str, started: bool = True) -> None:
        if self.spent():
            raise BudgetSpent(stage, started, self.budget_s)
