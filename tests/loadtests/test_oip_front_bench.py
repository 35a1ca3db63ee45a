"""loadtests/bench/oip_front.py: the arithmetic of the front's added-latency summary and the
interleaving order (no timing is asserted; the numbers are made up)."""

import numpy as np
import pytest

from loadtests.bench.oip_front import WAYS, interleaved_order, percentile, summarize
from loadtests.bench.report import _oip_front


@pytest.mark.parametrize("q", [0, 10, 50, 90, 100])
def test_percentile_matches_numpy(q):
    samples = [7.0, 1.0, 3.0, 10.0, 2.0, 5.5]
    assert percentile(samples, q) == pytest.approx(np.percentile(samples, q))


def test_percentile_of_nothing_is_an_error():
    with pytest.raises(ValueError):
        percentile([], 50)


def test_summary_gives_each_fronts_added_ms_and_ratio_over_direct():
    samples_s = {
        "direct_http": [0.010, 0.020, 0.030, 0.040, 0.050],  # median 30 ms, p90 46 ms
        "front_http": [0.015, 0.025, 0.035, 0.045, 0.055],  # median 35 ms, p90 51 ms
        "front_grpc": [0.060, 0.060, 0.060, 0.060, 0.100],  # median 60 ms, p90 84 ms
    }
    summary = summarize(samples_s)
    assert summary["latency"]["direct_http"] == pytest.approx({"requests": 5, "median_ms": 30.0, "p90_ms": 46.0})
    assert summary["added"]["front_http"] == pytest.approx({"median_ms": 5.0, "p90_ms": 5.0, "ratio": 35 / 30})
    assert summary["added"]["front_grpc"] == pytest.approx({"median_ms": 30.0, "p90_ms": 38.0, "ratio": 2.0})
    assert "direct_http" not in summary["added"]


def test_every_way_goes_first_equally_often():
    firsts = [interleaved_order(WAYS, i)[0] for i in range(3 * len(WAYS))]
    assert sorted(set(firsts)) == sorted(WAYS)
    assert all(firsts.count(way) == 3 for way in WAYS)
    assert all(sorted(interleaved_order(WAYS, i)) == sorted(WAYS) for i in range(5))


def test_report_section_shows_the_added_figures():
    samples_s = {way: [0.01 * (k + 1) for k in range(10)] for way in WAYS}
    samples_s["front_grpc"] = [s + 0.002 for s in samples_s["front_grpc"]]
    result = {"model": "fast_style", "side_px": 64, "rounds": 10, **summarize(samples_s)}
    text = "\n".join(_oip_front(result))
    assert "| through the front, `tritonclient.grpc` | 10 | 57.0 | 93.0 | +2.0 | +2.0 | 1.04x |" in text
    assert "| through the front, `tritonclient.http` | 10 | 55.0 | 91.0 | +0.0 | +0.0 | 1.00x |" in text
