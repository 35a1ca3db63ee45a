"""A few seconds of locust against the test TorchServe (tiny weights), so the load-test harness
cannot rot: every capability gets requests and every answer passes the locust checks. No
timing is asserted; speed is for `make bench`."""

import os
import subprocess
import sys
from pathlib import Path

from loadtests.load_profile import CAPABILITIES
from loadtests.summary import read_stats

LOCUSTFILE = Path(__file__).resolve().parents[2] / "loadtests" / "locustfile.py"


def test_every_capability_answers_correctly_under_load(server, tmp_path):
    env = {
        **os.environ,
        "LOADTEST_PROFILE": "smoke",
        "LOADTEST_KEY_FILE": str(server.process.workdir / "key_file.json"),
        "LOADTEST_SEED": "0",
    }
    prefix = tmp_path / "smoke"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(LOCUSTFILE),
            "--headless",
            "--host",
            server.url,
            "-u",
            str(len(CAPABILITIES)),
            "-r",
            str(len(CAPABILITIES)),
            "-t",
            "5s",
            # in-flight requests finish instead of being cut off when the 5 s are up
            "--stop-timeout",
            "120",
            "--csv",
            str(prefix),
            "--exit-code-on-error",
            "0",
            "--only-summary",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    rows = {row.name: row for row in read_stats(Path(f"{prefix}_stats.csv"))}
    failures = Path(f"{prefix}_failures.csv").read_text()
    for capability in CAPABILITIES:
        assert capability in rows and rows[capability].requests > 0, f"no {capability} requests:\n{run.stderr[-3000:]}"
        assert rows[capability].failures == 0, failures
