"""Locust against a TorchServe of the shipped archives (whatever weights/ holds: tiny offline
stand-ins here), one capability at a time at 1, 4 and 16 users with no think time: requests/s,
p50, p95 and failures per capability, and each worker's peak RSS while it served.

    python -m loadtests.bench.locust_sweep --out locust.json [--quick]   (--quick: 1 and 4 users, 5 s; else 10 s each)
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from loadtests.bench.measure import PeakRss, section_args, write_results
from loadtests.bench.serving import running_server, worker_pids
from loadtests.load_profile import CAPABILITIES
from loadtests.summary import read_stats
from operations.server import archive_manifest

LOCUSTFILE = Path(__file__).resolve().parent.parent / "locustfile.py"
# The smoke profile's small diffusion and neural_style requests (full-size SD 1.5 serving is
# minutes per image on a 2-core CPU), but fast_style at 512 px: its network is full size.
SWEEP_ENV = {
    "LOADTEST_PROFILE": "smoke",
    "LOADTEST_WAIT_S": "0,0",
    "LOADTEST_FAST_SIDES_PX": "512",
    "LOADTEST_NEURAL_SIDE_PX": "128",
    "LOADTEST_NEURAL_STEPS": "5",
    "LOADTEST_DIFFUSION_STEPS": "4",
    "LOADTEST_LCM_STEPS": "4",
    "LOADTEST_DIFFUSION_SIZES_PX": "64x64",
}


def run_locust(url: str, key_file: Path, model: str, users: int, duration_s: int, scratch: Path) -> dict:
    prefix = scratch / f"{model}_{users}"
    env = {**os.environ, **SWEEP_ENV, "LOADTEST_MODELS": model, "LOADTEST_KEY_FILE": str(key_file)}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(LOCUSTFILE),
            "--headless",
            "--host",
            url,
            "-u",
            str(users),
            "-r",
            str(users),
            "-t",
            f"{duration_s}s",
            "--stop-timeout",
            "300",
            "--csv",
            str(prefix),
            "--exit-code-on-error",
            "0",
            "--only-summary",
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=duration_s + 600,
    )
    row = next((r for r in read_stats(Path(f"{prefix}_stats.csv")) if r.name == model), None)
    if row is None:
        return {"users": users, "requests": 0, "failures": 0}
    return {
        "users": users,
        "requests": row.requests,
        "failures": row.failures,
        "requests_per_s": row.requests_per_s,
        "p50_ms": row.p50_ms,
        "p95_ms": row.p95_ms,
    }


def main() -> None:
    args = section_args(__doc__.splitlines()[0])
    user_counts, duration_s = ((1, 4), 5) if args.quick else ((1, 4, 16), 10)
    results = {"quick": args.quick, "duration_s": duration_s, "profile": SWEEP_ENV, "capabilities": {}}
    with running_server(CAPABILITIES) as server, tempfile.TemporaryDirectory() as scratch:
        key_file = server.workdir / "key_file.json"
        for model in CAPABILITIES:
            # One untimed user first: a worker's first requests pay for lazy set-up.
            run_locust(server.inference_url, key_file, model, 1, 3, Path(scratch))
            with PeakRss(worker_pids(server, model)[0]) as rss:
                runs = [
                    run_locust(server.inference_url, key_file, model, n, duration_s, Path(scratch)) for n in user_counts
                ]
            manifest = archive_manifest(server.store / server.models[model])
            results["capabilities"][model] = {
                "runs": runs,
                "worker_peak_rss_mib": rss.peak_mib,
                "tiny_weights": any(w.get("synthetic") for w in manifest.get("weights", [])),
            }
    write_results(args.out, results)


if __name__ == "__main__":
    main()
