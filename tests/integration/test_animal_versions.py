"""Model settings per request (issue 18.4) against the shared TorchServe, which serves animals
1.0 (the default) and 1.1 (the same weights, tests/conftest.py): the version path picks the
archive that answers, describe names the device and dtype and each scheduler's ranges, and
the CLI's `--version` and `--scheduler` reach the server."""

import io
import os
import subprocess
import sys
from pathlib import Path

from PIL import Image

CLIENT_DIR = Path(__file__).resolve().parents[2] / "client"
FAST = {"animal": "tiger", "steps": 2, "width": 64, "height": 64, "seed": 3, "scheduler": "lcm", "guidance": 1.0}
SECOND = "1.1"


def describe(server, version: str = "") -> dict:
    path = f"/models/animals/{version}" if version else "/models/animals"
    [entry] = server.management("GET", f"{path}?customized=true").json()
    return entry["customizedMetadata"]


def test_both_versions_describe_where_they_run_and_the_ranges_per_scheduler(server):
    default, second = describe(server), describe(server, SECOND)
    assert (default["version"], second["version"]) == ("1.0", SECOND)
    for described in (default, second):
        assert (described["device"], described["dtype"]) == ("cpu", "float32")  # tiny weights run in fp32
        steps = described["fields"]["steps"]["by_scheduler"]
        assert steps["lcm"]["max"] <= 8 and steps["dpmpp"] == {"min": 20, "max": 100, "default": 25}


def test_the_version_path_picks_the_archive_that_answers(server):
    answers = {
        version: server.session.post(
            f"{server.url}/predictions/animals{'/' + version if version else ''}",
            json={**FAST, "response_format": "json"},
            timeout=300,
        )
        for version in ("", SECOND)
    }
    assert all(a.status_code == 200 for a in answers.values()), [a.text for a in answers.values()]
    assert answers[""].json()["model_version"] == "1.0" and answers[SECOND].json()["model_version"] == SECOND
    assert answers[SECOND].json()["parameters"]["scheduler"] == "lcm"
    # The same weights and seed: the same picture, whichever version drew it.
    assert answers[""].json()["images"] == answers[SECOND].json()["images"]


def test_the_cli_sends_version_and_scheduler(server, tmp_path):
    out = tmp_path / "tiger.png"
    env = {
        **os.environ,
        "PYTHONPATH": str(CLIENT_DIR),
        "IMAGELAB_KEY_FILE": str(server.process.workdir / "key_file.json"),
    }
    args = ["animal", "tiger", "--version", SECOND, "--scheduler", "lcm", "--guidance", "1", "--quiet", "-o", str(out)]
    args += ["--steps", "2", "--width", "64", "--height", "64", "--seed", "3"]
    command = [sys.executable, "-m", "imagelab_client", "--url", server.url, "--management-url", server.management_url]
    done = subprocess.run([*command, *args], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"version {SECOND}" in done.stdout and "seed 3" in done.stdout
    reference = server.predict("animals", json=FAST, timeout_s=300)
    assert reference.status_code == 200, reference.text
    with Image.open(out) as written, Image.open(io.BytesIO(reference.content)) as expected:
        assert written.convert("RGB").tobytes() == expected.convert("RGB").tobytes()
