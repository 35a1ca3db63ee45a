"""Cancel through a real TorchServe and the real v2 front (`POST /v2/cancel/{job_id}`): a long
streamed tiny-model generation stops with 499 Cancelled well before its last step, and the same
worker (same pid) answers the next request; a client's own job id cancelled while queued gets
the 499 as the HTTP status."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from support import model_config, own_server

from oipfront.process import start_front_process
from operations.server import free_ports

STEPS = 100  # the most txt2img takes; 256 px so a tiny-model step is not over in a blink
REQUEST = {"prompt": "a lighthouse at dusk", "steps": STEPS, "width": 256, "height": 256, "seed": 5}
START_TIMEOUT_S = 120
CLIENT_DIR = Path(__file__).resolve().parents[2] / "client"


@pytest.fixture(scope="module")
def txt2img(tmp_path_factory):
    config = model_config("txt2img")
    # Rates pinned near zero: admission never refuses the long job on a loaded machine.
    config["handler"]["cost_rates"] = {"unet": 1e-9, "decode_full": 1e-9, "decode_fast": 1e-9, "text": 1e-9}
    with own_server(tmp_path_factory, "txt2img", config) as (server, session):
        yield server, session


@pytest.fixture(scope="module")
def front(txt2img, tmp_path_factory):
    """The v2 front as `make serve` starts it: its cancel markers go to {workdir}/cancel,
    where operations/server.py points TorchServe's workers."""
    server, _ = txt2img
    http_port, grpc_port = free_ports(2)
    key_file = tmp_path_factory.mktemp("front") / "oip_key.json"
    log = key_file.with_name("front.log").open("wb")
    process = start_front_process(
        server.inference_url, server.management_url, server.workdir, http_port, grpc_port, key_file, log
    )
    url = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert process.poll() is None, key_file.with_name("front.log").read_text()[-3000:]
            if key_file.is_file():
                headers = {"Authorization": f"Bearer {json.loads(key_file.read_text())['key']}"}
                try:
                    if requests.get(f"{url}/v2/health/live", headers=headers, timeout=5).ok:
                        break
                except requests.RequestException:
                    pass
            assert time.monotonic() < deadline, "the v2 front did not start"
            time.sleep(0.2)
        yield url, headers
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _worker_pid(server) -> int:
    answer = requests.get(
        f"{server.management_url}/models/txt2img",
        headers={"Authorization": f"Bearer {server.keys().management}"},
        timeout=30,
    )
    [worker] = answer.json()[0]["workers"]
    return worker["pid"]


def _cancelled_count(server) -> float:
    """ImagelabCancelledRequests summed over its series (Prometheus text, metrics port)."""
    url = f"http://127.0.0.1:{server.ports.metrics}/metrics"
    text = requests.get(url, headers={"Authorization": f"Bearer {server.keys().inference}"}, timeout=30).text
    lines = [line for line in text.splitlines() if line.startswith("ImagelabCancelledRequests{")]
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines)


def test_a_streamed_generation_cancelled_by_its_job_id_stops_and_frees_the_worker(txt2img, front):
    server, session = txt2img
    url, front_headers = front
    pid = _worker_pid(server)

    events, job_id = [], None
    with session.post(
        f"{server.inference_url}/predictions/txt2img", json={**REQUEST, "stream": True}, stream=True, timeout=600
    ) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if not line:
                continue
            event = json.loads(line)
            events.append(event)
            if job_id is None and event["type"] == "progress":
                job_id = event["job_id"]
                cancel = requests.post(f"{url}/v2/cancel/{job_id}", headers=front_headers, timeout=30)
                assert cancel.status_code == 202 and cancel.json() == {"job_id": job_id, "cancel": "requested"}

    steps = [e["step"] for e in events if e["type"] == "progress"]
    last = events[-1]
    assert last["type"] == "error" and last["code"] == 499 and last["error_type"] == "Cancelled", last
    assert last["job_id"] == job_id
    assert steps == list(range(1, len(steps) + 1)) and len(steps) < STEPS // 2, steps  # far from the last step
    # The same worker, not a restarted one, answers the next request at once.
    assert _worker_pid(server) == pid
    after = session.post(
        f"{server.inference_url}/predictions/txt2img", json={**REQUEST, "steps": 2, "width": 64, "height": 64}
    )
    assert after.status_code == 200 and after.headers["Content-Type"] == "image/png"
    assert _worker_pid(server) == pid


def test_a_clients_own_job_id_cancelled_before_it_runs_is_a_499(txt2img, front):
    server, session = txt2img
    url, front_headers = front
    assert requests.post(f"{url}/v2/cancel/my-job-0001", headers=front_headers, timeout=30).status_code == 202
    answer = session.post(f"{server.inference_url}/predictions/txt2img", json={**REQUEST, "job_id": "my-job-0001"})
    assert answer.status_code == 499, answer.text
    assert answer.json()["type"] == "Cancelled" and answer.json()["job_id"] == "my-job-0001"


def test_the_cancel_endpoint_needs_the_fronts_key_and_a_job_id(front):
    url, front_headers = front
    assert requests.post(f"{url}/v2/cancel/some-job-1", timeout=30).status_code == 401
    refused = requests.post(f"{url}/v2/cancel/no", headers=front_headers, timeout=30)
    assert refused.status_code == 400 and "8 to 64" in refused.json()["error"]
    assert requests.get(f"{url}/v2/cancel/some-job-1", headers=front_headers, timeout=30).status_code == 405


def test_ctrl_c_in_the_cli_cancels_the_job_and_exits_130(txt2img, front, tmp_path):
    server, session = txt2img
    url, front_headers = front
    pid = _worker_pid(server)
    key_file = tmp_path / "oip_key.json"
    key_file.write_text(json.dumps({"key": front_headers["Authorization"].removeprefix("Bearer ")}))
    env = {
        **os.environ,
        "PYTHONPATH": str(CLIENT_DIR),
        "IMAGELAB_KEY_FILE": str(server.workdir / "key_file.json"),
        "IMAGELAB_CANCEL_URL": url,
        "IMAGELAB_CANCEL_KEY_FILE": str(key_file),
    }
    command = [sys.executable, "-m", "imagelab_client", "--url", server.inference_url, "generate", REQUEST["prompt"]]
    command += [
        "--steps",
        str(STEPS),
        "--width",
        "256",
        "--height",
        "256",
        "--seed",
        "5",
        "-o",
        str(tmp_path / "x.png"),
    ]
    cancelled_before = _cancelled_count(server)
    cli = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen, started = bytearray(), threading.Event()

    def read_stderr():
        while chunk := cli.stderr.read1(4096):
            seen.extend(chunk)
            if f"/{STEPS}".encode() in seen:
                started.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        assert started.wait(600), seen.decode(errors="replace")
        cli.send_signal(signal.SIGINT)
        assert cli.wait(120) == 130
    finally:
        if cli.poll() is None:
            cli.kill()
    reader.join(30)
    last = seen.decode(errors="replace").strip().splitlines()[-1]
    assert last.startswith("imagelab: interrupted; cancelled job ") and "next step" in last, last
    assert not (tmp_path / "x.png").exists()
    # The worker stopped the job: the next request is served by the same worker.
    after = session.post(
        f"{server.inference_url}/predictions/txt2img", json={**REQUEST, "steps": 2, "width": 64, "height": 64}
    )
    assert after.status_code == 200 and _worker_pid(server) == pid
    assert _cancelled_count(server) == cancelled_before + 1  # answered 499, not finished
