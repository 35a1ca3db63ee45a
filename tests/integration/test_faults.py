"""Fault tests against a real TorchServe of their own: a killed worker, a full queue, a request
past its response timeout, out of memory. The archive enables fault injection (x_fault), which
production archives never do."""

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from support import assert_error, decode, model_config, own_server

pytestmark = pytest.mark.slow
# Far above the 3 s fault sleeps below: on a loaded machine decoding, stylising and encoding around
# the sleep take seconds too, and a served request must not be cut off by the timeout.
RESPONSE_TIMEOUT_S = 20


@pytest.fixture(scope="module")
def faulty(tmp_path_factory, photo_jpeg):
    config = model_config("fast_style")
    config.update(batchSize=1, maxBatchDelay=0, responseTimeout=RESPONSE_TIMEOUT_S, jobQueueSize=2)
    config["handler"]["fault_injection"] = True
    with own_server(tmp_path_factory, "fast_style", config, overrides={"job_queue_size": "2"}) as (server, session):
        yield server, session, photo_jpeg


def post(faulty, timeout_s=60, **fields):
    server, session, photo = faulty
    return session.post(
        f"{server.inference_url}/predictions/fast_style",
        files={"image": ("p.jpg", photo)},
        data={"max_side_px": "32", **fields},
        timeout=timeout_s,
    )


def wait_until_serving(faulty, deadline_s=120):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            if post(faulty, timeout_s=30).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(1)
    raise AssertionError("the server did not serve again")


def worker_pid(faulty, deadline_s=60) -> int:
    """The pid of the READY worker, once it is alive: right after a worker dies the management
    API may still list the dead one for a moment."""
    import psutil

    server, _, _ = faulty
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        answer = requests.get(
            f"{server.management_url}/models/fast_style",
            headers={"Authorization": f"Bearer {server.keys().management}"},
            timeout=10,
        )
        ready = [w["pid"] for w in answer.json()[0]["workers"] if w["status"] == "READY"]
        if ready and psutil.pid_exists(ready[0]):
            return ready[0]
        time.sleep(0.5)
    raise AssertionError("no live READY worker")


def test_out_of_memory_is_507_and_the_worker_lives(faulty):
    response = post(faulty, x_fault="oom")
    assert response.status_code == 507
    assert response.json()["type"] == "OutOfResources"
    assert "memory" in response.json()["message"]
    assert decode(post(faulty)).size == (32, 32)


def test_fault_field_is_validated(faulty):
    assert_error(post(faulty, x_fault="explode"), 400, "x_fault")


def test_request_past_its_response_timeout_fails_cleanly_and_the_worker_recovers(faulty):
    started = time.monotonic()
    response = post(faulty, x_fault=f"sleep:{RESPONSE_TIMEOUT_S + 4}", timeout_s=120)
    elapsed_s = time.monotonic() - started
    # TorchServe 0.12 restarts a worker past responseTimeout and answers 500 "Worker died.";
    # the handlers' own time budgets (504 or a truncated result) stay under it (README).
    assert response.status_code == 500 and response.json()["message"] == "Worker died."
    assert elapsed_s < RESPONSE_TIMEOUT_S + 30  # no hang
    wait_until_serving(faulty)


def test_a_full_queue_answers_503_quickly(faulty):
    def send(_):
        started = time.monotonic()
        response = post(faulty, x_fault="sleep:3", timeout_s=120)
        return response.status_code, time.monotonic() - started

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, range(8)))
    refused = [elapsed for status, elapsed in answers if status == 503]
    served = [elapsed for status, elapsed in answers if status == 200]
    assert refused and served, answers
    # Refused at once, not after queueing: before even the first served request (which sleeps 3 s).
    assert max(refused) < min(served), answers
    wait_until_serving(faulty)


def test_kill_9_of_a_worker_mid_request(faulty):
    pid = worker_pid(faulty)
    with ThreadPoolExecutor(1) as pool:
        # Long enough that the request is inside the worker when the kill comes, loaded or not.
        pending = pool.submit(post, faulty, x_fault="sleep:10", timeout_s=120)
        time.sleep(3.0)
        os.kill(pid, signal.SIGKILL)
        interrupted = pending.result()
    # A clear error, not a hang. TorchServe answers 507 when it takes the kill for an OOM kill
    # and 500 otherwise; seen both here, depending on when it notices the dead worker.
    assert interrupted.status_code in (500, 507) and interrupted.json()["message"] == "Worker died."
    wait_until_serving(faulty)
    assert worker_pid(faulty) != pid
