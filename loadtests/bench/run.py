"""`make bench`: run every benchmark section in its own process (so each one's peak memory is
its own), then write BENCHMARKS.md and plots under reports/bench/.

    python -m loadtests.bench.run [--quick] [--sections fast_style,sd15] [--sd-args "--measure-e2e"]
                                  [--render-only] [--report PATH]

--quick writes reports/bench/BENCHMARKS.quick.md instead of BENCHMARKS.md, so a sanity run never
replaces the committed numbers. --render-only rebuilds the report from the last JSON results.
--report writes the markdown elsewhere (a run of some sections, to paste into BENCHMARKS.md
without losing the others' committed numbers).
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from loadtests.bench.machine import describe_machine
from loadtests.bench.plots import write_plots
from loadtests.bench.report import render

REPO_ROOT = Path(__file__).resolve().parents[2]
SECTIONS = ("fast_style", "sd15", "sd15_served", "neural_style", "locust_sweep", "oip_front", "mixed_styles")


def run_section(name: str, out: Path, quick: bool, extra: list) -> str:
    """'' on success, else the tail of the section's error output."""
    command = (
        [sys.executable, "-m", f"loadtests.bench.{name}", "--out", str(out)] + (["--quick"] if quick else []) + extra
    )
    started = time.perf_counter()
    print(f"bench {name}: running{' (quick)' if quick else ''} ...", flush=True)
    run = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    print(
        f"bench {name}: {'done' if run.returncode == 0 else 'FAILED'} in {time.perf_counter() - started:.0f} s",
        flush=True,
    )
    if run.returncode != 0:
        tail = run.stderr.strip().splitlines()[-1:] or [f"exit code {run.returncode}"]
        print(run.stderr[-3000:], file=sys.stderr)
        return tail[0]
    return ""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--reports", type=Path, default=REPO_ROOT / "reports" / "bench")
    parser.add_argument("--render-only", action="store_true")
    parser.add_argument("--report", type=Path, default=None, help="the markdown to write (default: BENCHMARKS.md)")
    parser.add_argument(
        "--sd-args", default=None, help='sd15 options; default "--measure-e2e" (one real LCM image), "" with --quick'
    )
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {unknown}; known: {list(SECTIONS)}")
    args.reports.mkdir(parents=True, exist_ok=True)
    machine_file = args.reports / "machine.json"
    errors = {}
    if args.render_only:
        machine = json.loads(machine_file.read_text())
        load_end = tuple(machine.pop("load_average_end"))
    else:
        machine = describe_machine()
        for name in sections:
            sd_args = args.sd_args if args.sd_args is not None else ("" if args.quick else "--measure-e2e")
            extra = sd_args.split() if name == "sd15" else []
            problem = run_section(name, args.reports / f"{name}.json", args.quick, extra)
            if problem:
                errors[name] = problem
        load_end = os.getloadavg()
        machine_file.write_text(json.dumps({**machine, "load_average_end": load_end}, indent=2))
    results = {}
    for name in sections:
        path = args.reports / f"{name}.json"
        if path.exists() and name not in errors:
            results[name] = json.loads(path.read_text())
    plots, plot_note = write_plots(results, args.reports)
    target = args.report or (args.reports / "BENCHMARKS.quick.md" if args.quick else REPO_ROOT / "BENCHMARKS.md")
    # Plots are local artefacts under reports/ (gitignored); links are relative to the report.
    relative = [Path(os.path.relpath(p, target.parent)) for p in plots]
    target.write_text(render(machine, load_end, results, errors, relative, plot_note, args.quick))
    print(f"wrote {target}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
