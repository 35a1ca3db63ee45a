"""What every benchmark section shares: wall-clock timing, FLOP counting, the machine's matmul
peak, peak RSS sampling and the JSON hand-off to the report."""

import argparse
import json
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil
import torch


@dataclass(frozen=True)
class Timing:
    runs: int
    median_s: float
    best_s: float


def time_calls(fn, runs: int, warmup: int = 1) -> Timing:
    """Median and best wall-clock seconds of `runs` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(max(1, runs)):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    samples.sort()
    return Timing(len(samples), samples[len(samples) // 2], samples[0])


def count_flops(fn) -> int:
    """FLOPs of one call, counted by torch's FlopCounterMode (matmuls, convolutions, attention;
    elementwise work is not counted, so achieved GFLOP/s slightly understates the real rate)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def matmul_peak_gflops(dtype: torch.dtype, size: int, budget_s: float) -> dict:
    """Best and median GFLOP/s of square `size` matmuls in `dtype`, repeated for ~budget_s."""
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    torch.mm(a, b)  # kernel selection and page faults
    samples, deadline = [], time.perf_counter() + budget_s
    while len(samples) < 3 or time.perf_counter() < deadline:
        started = time.perf_counter()
        torch.mm(a, b)
        samples.append(time.perf_counter() - started)
    flops = 2 * size**3
    samples.sort()
    return {
        "dtype": str(dtype).removeprefix("torch."),
        "size": size,
        "runs": len(samples),
        "best_gflops": flops / samples[0] / 1e9,
        "median_gflops": flops / samples[len(samples) // 2] / 1e9,
    }


class PeakRss:
    """Samples a process's resident set size (with its children) in a background thread."""

    def __init__(self, pid: int = None, interval_s: float = 0.05):
        self.process = psutil.Process(pid or os.getpid())
        self.interval_s = interval_s
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        try:
            return self.process.memory_info().rss
        except psutil.Error:
            return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, self._rss())
            self._stop.wait(self.interval_s)

    def __enter__(self) -> "PeakRss":
        self.peak_bytes = self._rss()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_bytes = max(self.peak_bytes, self._rss())

    @property
    def peak_mib(self) -> float:
        return self.peak_bytes / 2**20


def section_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, required=True, help="JSON results file")
    parser.add_argument("--quick", action="store_true", help="fewer and smaller runs: a sanity check")
    return parser


def section_args(description: str) -> argparse.Namespace:
    return section_parser(description).parse_args()


def write_results(path: Path, results: dict) -> None:
    def plain(value):
        return asdict(value) if isinstance(value, Timing) else str(value)

    results = {**results, "torch_threads": torch.get_num_threads()}
    Path(path).write_text(json.dumps(results, indent=2, default=plain))
