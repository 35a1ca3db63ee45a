"""Pass or fail a locust run from its stats CSV: the failure ratio and the p95 latency of each
capability against thresholds. Prints a table; exits 1 on any failure (2 on an unreadable CSV).

    python loadtests/summary.py reports/loadtest_stats.csv --max-failure-ratio 0.01 \
        --p95-ms fast_style=10000,txt2img=600000 --require fast_style,txt2img
"""

import argparse
import csv
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

AGGREGATED = "Aggregated"


@dataclass(frozen=True)
class StatsRow:
    name: str
    requests: int
    failures: int
    p50_ms: float  # nan when locust has no samples
    p95_ms: float
    requests_per_s: float

    @property
    def failure_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class Thresholds:
    max_failure_ratio: float = 0.0
    p95_ms: dict = field(default_factory=dict)  # capability -> ms; "*" for every capability
    require: tuple = ()  # capabilities that must have made requests

    def __post_init__(self):
        if not 0.0 <= self.max_failure_ratio <= 1.0:
            raise ValueError(f"max_failure_ratio must lie in [0, 1], got {self.max_failure_ratio}")
        bad = {k: v for k, v in self.p95_ms.items() if not v > 0}
        if bad:
            raise ValueError(f"p95 thresholds must be positive milliseconds, got {bad}")

    def p95_limit_ms(self, name: str) -> Optional[float]:
        return self.p95_ms.get(name, self.p95_ms.get("*"))


@dataclass(frozen=True)
class Verdict:
    row: StatsRow
    problems: tuple  # empty when the row passes

    @property
    def passed(self) -> bool:
        return not self.problems


def _number(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan  # locust writes "N/A" for percentiles without samples


def read_stats(path: Path) -> list:
    """Rows of locust's `{prefix}_stats.csv`, the Aggregated row last."""
    with open(path, newline="") as handle:
        rows = [
            StatsRow(
                name=record["Name"],
                requests=int(record["Request Count"]),
                failures=int(record["Failure Count"]),
                p50_ms=_number(record["50%"]),
                p95_ms=_number(record["95%"]),
                requests_per_s=_number(record["Requests/s"]),
            )
            for record in csv.DictReader(handle)
        ]
    return sorted(rows, key=lambda row: row.name == AGGREGATED)


def evaluate(rows: list, thresholds: Thresholds) -> list:
    """One verdict per row; a required capability with no row gets a failing verdict of its own,
    and so does a run without any request."""
    verdicts = []
    for row in rows:
        problems = []
        if row.failure_ratio > thresholds.max_failure_ratio:
            problems.append(f"failure ratio {row.failure_ratio:.2%} > {thresholds.max_failure_ratio:.2%}")
        limit = None if row.name == AGGREGATED else thresholds.p95_limit_ms(row.name)
        if limit is not None and row.requests and not row.p95_ms <= limit:
            problems.append(f"p95 {row.p95_ms:.0f} ms > {limit:.0f} ms")
        if row.name in thresholds.require and row.requests == 0:
            problems.append("no requests")
        verdicts.append(Verdict(row, tuple(problems)))
    seen = {row.name for row in rows}
    for name in thresholds.require:
        if name not in seen:
            verdicts.append(Verdict(StatsRow(name, 0, 0, math.nan, math.nan, 0.0), ("no requests",)))
    total = sum(row.requests for row in rows if row.name != AGGREGATED)
    if total == 0:
        verdicts.append(Verdict(StatsRow(AGGREGATED, 0, 0, math.nan, math.nan, 0.0), ("no requests at all",)))
    return verdicts


def format_report(verdicts: list) -> str:
    lines = [f"{'capability':<14}{'requests':>9}{'failures':>9}{'req/s':>8}{'p50 ms':>9}{'p95 ms':>9}  verdict"]
    for v in verdicts:
        r = v.row
        verdict = "pass" if v.passed else "FAIL: " + "; ".join(v.problems)
        lines.append(
            f"{r.name:<14}{r.requests:>9}{r.failures:>9}{r.requests_per_s:>8.2f}"
            f"{r.p50_ms:>9.0f}{r.p95_ms:>9.0f}  {verdict}"
        )
    passed = all(v.passed for v in verdicts)
    lines.append("PASS" if passed else "FAIL")
    return "\n".join(lines)


def parse_p95(text: str) -> dict:
    """ "5000" (every capability) or "fast_style=5000,txt2img=600000" -> {name: ms}."""
    limits = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        name, sep, value = part.rpartition("=")
        limits[name.strip() if sep else "*"] = float(value)
    return limits


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stats_csv", type=Path, help="locust's {prefix}_stats.csv")
    parser.add_argument("--max-failure-ratio", type=float, default=0.0)
    parser.add_argument("--p95-ms", type=parse_p95, default={}, help='"5000" or "fast_style=5000,txt2img=600000"')
    parser.add_argument("--require", default="", help="comma-separated capabilities that must have requests")
    args = parser.parse_args(argv)
    try:
        rows = read_stats(args.stats_csv)
    except (OSError, KeyError, ValueError) as error:
        print(f"cannot read locust stats {args.stats_csv}: {error}", file=sys.stderr)
        return 2
    thresholds = Thresholds(
        args.max_failure_ratio, args.p95_ms, tuple(n.strip() for n in args.require.split(",") if n.strip())
    )
    verdicts = evaluate(rows, thresholds)
    print(format_report(verdicts))
    return 0 if all(v.passed for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
