"""Admission against the time budget: the 422 TooExpensive refusal and the batch split (503)."""

from types import SimpleNamespace

import pytest

from handlers.common.errors import Overloaded, TooExpensive
from handlers.common.responses import error_reply
from handlers.services.admission import Admission, DiffusionAdmission
from imagelab.cost import Work
from imagelab.diffusion.jobs import GenerationJob

RATES = {"unet": 1.0, "decode_full": 1.0, "decode_fast": 0.01, "text": 0.01}
ENGINE = SimpleNamespace(schedulers=("ddim", "dpmpp", "euler_a", "lcm"))


def test_an_over_budget_job_is_refused_with_the_estimate_budget_and_what_fits():
    admission = DiffusionAdmission(ENGINE, budget_s=5.0, min_size_px=64, pinned_rates=RATES)
    with pytest.raises(TooExpensive) as refused:
        admission.check(GenerationJob("x", steps=25, width=512, height=512))
    error = refused.value
    body = error.body()
    assert (body["code"], body["type"], body["field"]) == (422, "TooExpensive", "steps")
    assert body["estimated_s"] == pytest.approx(13.4, abs=0.1) and body["budget_s"] == 5.0
    assert {"changes": {"steps": 8}, "estimated_s": 4.5} in body["fits"]
    for text in ("about 13 s", "5 s time budget", "steps=8", "scheduler=lcm", "width=312, height=312"):
        assert text in body["message"], body["message"]


def test_a_job_within_budget_passes():
    admission = DiffusionAdmission(ENGINE, budget_s=60.0, min_size_px=64, pinned_rates=RATES)
    admission.check(GenerationJob("x", steps=25, width=512, height=512))


def test_describe_reports_the_estimate_per_megapixel_step():
    admission = DiffusionAdmission(ENGINE, budget_s=60.0, min_size_px=64, pinned_rates=RATES)
    described = admission.describe()
    assert described["unet_s_per_megapixel_step"] == 1.0 and described["time_budget_s"] == 60.0
    assert described["rates"]["decode_fast"]["s_per_unit"] == 0.01


def test_a_batch_runs_what_fits_and_answers_the_rest_503_with_retry_after():
    admission = Admission(budget_s=10.0, pinned_rates={"stylize": 1.0})
    ran, events = [], []

    def run(requests, progress):
        ran.append(list(requests))
        progress(len(requests) - 1, {"step": 1})
        return [f"done {r}" for r in requests]

    answers = admission.run_within_budget(
        [6.0, 6.0, 3.0], lambda seconds: Work({"stylize": seconds}), run, lambda i, e: events.append(i)
    )
    assert ran == [[6.0, 3.0]]
    assert events == [2]  # progress of the run's 2nd request reaches the batch's 3rd
    assert answers[0] == "done 6.0" and answers[2] == "done 3.0"
    assert isinstance(answers[1], Overloaded) and answers[1].status == 503
    reply = error_reply(answers[1])
    assert reply.status == 503 and reply.headers["Retry-After"] == "9"


def test_a_batch_that_fits_runs_whole():
    admission = Admission(budget_s=10.0, pinned_rates={"stylize": 1.0})
    answers = admission.run_within_budget([2.0, 3.0], lambda s: Work({"stylize": s}), lambda r, p: list(r), None)
    assert answers == [2.0, 3.0]


class _RetimingAdmission(DiffusionAdmission):
    """Its 'calibration' sets the rates it is given, in turn: first the start-up's, then the
    re-time's; no model runs."""

    def __init__(self, budget_s: float, rates_in_turn: list):
        super().__init__(ENGINE, budget_s=budget_s, min_size_px=64)
        self.rates_in_turn = list(rates_in_turn)
        self.calibrations = 0

    def calibrate(self) -> None:
        self.calibrations += 1
        for stage, rate in self.rates_in_turn.pop(0).items():
            self.speed.calibrate(stage, rate, 1.0)


SLOW = {**RATES, "unet": 4.0}  # a start-up timed beside other workers loading


def test_a_refusal_on_start_up_rates_only_times_again_first_and_admits_what_then_fits():
    admission = _RetimingAdmission(budget_s=20.0, rates_in_turn=[SLOW, RATES])
    admission.calibrate()
    admission.check(GenerationJob("x", steps=25, width=512, height=512))  # 13.4 s on the re-timed rates
    assert admission.calibrations == 2 and admission.retimed


def test_the_re_time_happens_once_and_a_job_still_over_budget_is_refused():
    admission = _RetimingAdmission(budget_s=5.0, rates_in_turn=[SLOW, SLOW])
    admission.calibrate()
    for _ in range(2):
        with pytest.raises(TooExpensive):
            admission.check(GenerationJob("x", steps=25, width=512, height=512))
    assert admission.calibrations == 2  # the second refusal did not time again


def test_rates_refined_by_served_requests_are_not_re_timed():
    admission = _RetimingAdmission(budget_s=5.0, rates_in_turn=[SLOW])
    admission.calibrate()
    admission.speed.observe("unet", 4.0, 1.0)  # a served group at the same slow rate
    with pytest.raises(TooExpensive):
        admission.check(GenerationJob("x", steps=25, width=512, height=512))
    assert admission.calibrations == 1


def test_pinned_rates_are_never_re_timed():
    admission = DiffusionAdmission(ENGINE, budget_s=5.0, min_size_px=64, pinned_rates=RATES)
    admission.calibrate = None  # would fail if called
    with pytest.raises(TooExpensive):
        admission.check(GenerationJob("x", steps=25, width=512, height=512))
