"""loadtests/summary.py: the pass/fail verdict on a locust stats CSV."""

import csv
import math

import pytest

from loadtests import summary
from loadtests.summary import Thresholds, evaluate, parse_p95, read_stats

HEADER = [
    "Type",
    "Name",
    "Request Count",
    "Failure Count",
    "Median Response Time",
    "Average Response Time",
    "Min Response Time",
    "Max Response Time",
    "Average Content Size",
    "Requests/s",
    "Failures/s",
    "50%",
    "66%",
    "75%",
    "80%",
    "90%",
    "95%",
    "98%",
    "99%",
    "99.9%",
    "99.99%",
    "100%",
]


def write_stats(path, rows):
    """rows: (name, requests, failures, p50, p95, rps) as locust writes them."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for name, requests, failures, p50, p95, rps in rows:
            kind = "" if name == "Aggregated" else "POST"
            writer.writerow(
                [
                    kind,
                    name,
                    requests,
                    failures,
                    p50,
                    p50,
                    1,
                    p95,
                    1000,
                    rps,
                    0,
                    p50,
                    p50,
                    p50,
                    p95,
                    p95,
                    p95,
                    p95,
                    p95,
                    p95,
                    p95,
                    p95,
                ]
            )
    return path


@pytest.fixture
def healthy(tmp_path):
    return write_stats(
        tmp_path / "run_stats.csv",
        [
            ("fast_style", 100, 0, 900, 1500, 3.3),
            ("txt2img", 10, 0, 40000, 90000, 0.2),
            ("Aggregated", 110, 0, 1000, 80000, 3.5),
        ],
    )


def test_reads_locust_columns(healthy):
    rows = read_stats(healthy)
    assert [r.name for r in rows] == ["fast_style", "txt2img", "Aggregated"]
    assert rows[0].requests == 100 and rows[0].p95_ms == 1500 and rows[0].requests_per_s == 3.3


def test_passes_within_thresholds(healthy):
    verdicts = evaluate(read_stats(healthy), Thresholds(0.0, {"fast_style": 2000, "txt2img": 100000}))
    assert all(v.passed for v in verdicts)


def test_p95_over_its_capability_limit_fails_that_capability_only(healthy):
    verdicts = {v.row.name: v for v in evaluate(read_stats(healthy), Thresholds(0.0, {"fast_style": 1000}))}
    assert not verdicts["fast_style"].passed and "p95 1500 ms > 1000 ms" in verdicts["fast_style"].problems[0]
    assert verdicts["txt2img"].passed and verdicts["Aggregated"].passed


def test_a_bare_p95_applies_to_every_capability_but_not_the_aggregate(healthy):
    verdicts = {v.row.name: v for v in evaluate(read_stats(healthy), Thresholds(0.0, parse_p95("50000")))}
    assert verdicts["fast_style"].passed and not verdicts["txt2img"].passed and verdicts["Aggregated"].passed


def test_failure_ratio_over_the_limit_fails(tmp_path):
    path = write_stats(tmp_path / "s.csv", [("animals", 50, 1, 100, 200, 1.0), ("Aggregated", 50, 1, 100, 200, 1.0)])
    assert not all(v.passed for v in evaluate(read_stats(path), Thresholds(max_failure_ratio=0.0)))
    assert all(v.passed for v in evaluate(read_stats(path), Thresholds(max_failure_ratio=0.02)))


def test_a_required_capability_without_requests_fails(healthy):
    verdicts = evaluate(read_stats(healthy), Thresholds(require=("fast_style", "animals")))
    failing = [v for v in verdicts if not v.passed]
    assert [v.row.name for v in failing] == ["animals"] and failing[0].problems == ("no requests",)


def test_a_run_without_requests_fails(tmp_path):
    path = write_stats(tmp_path / "s.csv", [("Aggregated", 0, 0, "N/A", "N/A", 0)])
    rows = read_stats(path)
    assert math.isnan(rows[0].p95_ms)
    assert not all(v.passed for v in evaluate(rows, Thresholds(p95_ms={"*": 10})))


def test_parse_p95_forms():
    assert parse_p95("fast_style=5000, txt2img=600000") == {"fast_style": 5000.0, "txt2img": 600000.0}
    assert parse_p95("2500") == {"*": 2500.0}
    assert parse_p95("") == {}


def test_thresholds_reject_nonsense():
    with pytest.raises(ValueError, match="max_failure_ratio"):
        Thresholds(max_failure_ratio=1.5)
    with pytest.raises(ValueError, match="positive"):
        Thresholds(p95_ms={"fast_style": 0})


def test_main_exit_codes(healthy, tmp_path, capsys):
    assert summary.main([str(healthy), "--p95-ms", "fast_style=2000", "--require", "fast_style,txt2img"]) == 0
    assert "PASS" in capsys.readouterr().out
    assert summary.main([str(healthy), "--p95-ms", "fast_style=1000"]) == 1
    assert capsys.readouterr().out.rstrip().endswith("FAIL")
    assert summary.main([str(tmp_path / "missing.csv")]) == 2
