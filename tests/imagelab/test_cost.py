"""The pure cost model: calibration, moving average, estimates and batch admission."""

import pytest

from imagelab.cost import SpeedModel, Work, admit_batch


def test_calibration_sets_the_rate_and_the_estimate_is_linear_in_work():
    speed = SpeedModel()
    speed.calibrate("unet", seconds=2.0, units=0.5)  # 4 s per unit
    speed.calibrate("decode_full", seconds=0.3, units=0.1)
    assert speed.rate("unet") == pytest.approx(4.0)
    assert speed.estimate_s(Work({"unet": 10.0, "decode_full": 1.0})) == pytest.approx(43.0)


def test_observations_move_the_rate_by_the_smoothing_weight():
    speed = SpeedModel(smoothing=0.25)
    speed.calibrate("unet", 1.0, 1.0)
    speed.observe("unet", seconds=10.0, units=2.0)  # measured 5 s per unit
    assert speed.rate("unet") == pytest.approx(1.0 + 0.25 * (5.0 - 1.0))
    for _ in range(40):
        speed.observe("unet", 10.0, 2.0)
    assert speed.rate("unet") == pytest.approx(5.0, rel=1e-3)
    assert speed.describe()["unet"]["observations"] == 41


def test_a_first_observation_without_calibration_sets_the_rate():
    speed = SpeedModel()
    speed.observe("text", 0.2, 2)
    assert speed.rate("text") == pytest.approx(0.1)


def test_pinned_rates_ignore_calibration_and_observations():
    speed = SpeedModel(pinned={"unet": 3.0})
    speed.calibrate("unet", 100.0, 1.0)
    speed.observe("unet", 100.0, 1.0)
    assert speed.rate("unet") == 3.0
    assert speed.describe()["unet"]["pinned"] is True


def test_an_unknown_stage_is_a_clear_error():
    with pytest.raises(KeyError, match="no rate for stage 'decode_fast'"):
        SpeedModel().estimate_s(Work({"decode_fast": 1.0}))


@pytest.mark.parametrize("seconds, units", [(1.0, 0.0), (-1.0, 1.0), (float("nan"), 1.0)])
def test_calibration_rejects_meaningless_measurements(seconds, units):
    with pytest.raises(ValueError):
        SpeedModel().calibrate("unet", seconds, units)


def test_work_adds_per_stage_and_rejects_negative_amounts():
    total = Work({"unet": 1.0, "text": 1}) + Work({"unet": 2.0, "decode_fast": 0.5})
    assert dict(total.units) == {"unet": 3.0, "text": 1, "decode_fast": 0.5}
    with pytest.raises(ValueError, match="unet"):
        Work({"unet": -1.0})


def test_a_batch_runs_what_fits_and_defers_the_rest():
    admission = admit_batch([30.0, 50.0, 15.0, 10.0], budget_s=60.0)
    # 30 fits; 30 + 50 does not; 30 + 15 fits; 45 + 10 fits.
    assert admission.admitted == [0, 2, 3]
    assert admission.deferred == [1]
    assert admission.admitted_s == pytest.approx(55.0)
    assert admission.retry_after_s == 55


def test_the_first_request_always_runs_and_retry_after_is_whole_seconds():
    admission = admit_batch([0.2, 80.0], budget_s=60.0)
    assert admission.admitted == [0] and admission.deferred == [1]
    assert admission.retry_after_s == 1
    assert admit_batch([], 10.0).admitted == []


def test_calls_far_below_the_calibration_size_do_not_move_the_rate():
    """A tiny image's time is per-call overhead: folding it in as a rate would refuse the next
    large request (seen: a 16x1 px image made 1024 px look like 1e5 s)."""
    speed = SpeedModel()
    speed.calibrate("stylize", seconds=0.1, units=0.0655)  # 256 px
    before = speed.rate("stylize")
    speed.observe("stylize", seconds=0.05, units=16 / 1e6)  # 16x1 px, 3000 s per unit
    assert speed.rate("stylize") == before
    speed.observe("stylize", seconds=0.2, units=0.0655)  # a real measurement still counts
    assert speed.rate("stylize") > before
