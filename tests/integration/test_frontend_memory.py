"""What the TorchServe frontend may hold in memory (issue 17.7), against a real TorchServe of
its own started with the repository's config.properties: the JVM runs with the heap bound of
`vmargs`, a body over max_request_size is refused with 413, and a flood of large requests
past the model's own queue depth (jobQueueSize in its model-config) gets 503 at once while the
server keeps serving. The archive enables fault injection (x_fault=sleep) so that one request
holds the worker while the flood arrives, which production archives never do."""

import http.client
import io
import os
import struct
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image
from support import model_config, own_server

from operations.server import TorchServe
from repo_paths import REPO_ROOT

pytestmark = pytest.mark.slow
HOLD_S = 30  # how long one request keeps the worker busy: the flood arrives well within it
FLOOD = 32
BODY_BYTES = 4 << 20


def repo_config() -> dict:
    return dict(
        line.split("=", 1)
        for line in (REPO_ROOT / "config.properties").read_text().splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    )


def padded_png(total_bytes: int) -> bytes:
    """A valid 32x32 PNG grown to `total_bytes` by a private ancillary chunk, which decoders
    skip: a large request that costs the handler nothing to decode."""
    out = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 40, 40)).save(out, "PNG")
    png = out.getvalue()
    padding = os.urandom(total_bytes - len(png) - 12)
    chunk = struct.pack(">I", len(padding)) + b"pdLa" + padding
    chunk += struct.pack(">I", zlib.crc32(b"pdLa" + padding) & 0xFFFFFFFF)
    return png[:-12] + chunk + png[-12:]  # before IEND


@pytest.fixture(scope="module")
def frontend(tmp_path_factory):
    config = model_config("fast_style")
    config["handler"]["fault_injection"] = True
    with own_server(tmp_path_factory, "fast_style", config) as served:
        yield served


def java_command_line(server: TorchServe) -> list:
    """The frontend JVM's arguments: the launcher's child running org.pytorch.serve.ModelServer."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
            status = (proc / "status").read_text()
        except OSError:
            continue
        parent = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
        if parent == server.process.pid and b"org.pytorch.serve.ModelServer" in args:
            return [a.decode() for a in args if a]
    raise AssertionError(f"no frontend JVM under the launcher {server.process.pid}")


def test_the_frontend_jvm_runs_with_the_configured_heap_bound(frontend):
    server, _ = frontend
    vmargs = repo_config()["vmargs"].split()
    assert any(arg.startswith("-Xmx") for arg in vmargs)
    command = java_command_line(server)
    assert set(vmargs) <= set(command), command


def test_a_body_over_max_request_size_is_413_and_the_server_stays_up(frontend):
    server, session = frontend
    limit = int(repo_config()["max_request_size"])
    connection = http.client.HTTPConnection("127.0.0.1", server.ports.inference, timeout=60)
    try:
        # Expect: 100-continue lets the frontend refuse by the announced length, before a byte of
        # the body is sent, as a well-behaved client would.
        connection.putrequest("POST", "/predictions/fast_style")
        connection.putheader("Authorization", session.headers["Authorization"])
        connection.putheader("Content-Type", "image/png")
        connection.putheader("Content-Length", str(limit + (1 << 20)))
        connection.putheader("Expect", "100-continue")
        connection.endheaders()
        assert connection.getresponse().status == 413
    finally:
        connection.close()
    assert session.get(f"{server.inference_url}/ping", timeout=30).json()["status"] == "Healthy"


def batches_received(server: TorchServe) -> int:
    """How many batches the worker has taken (one log line each, in the worker's own log)."""
    log = server.workdir / "logs" / "model_log.log"
    return log.read_text(errors="replace").count("Backend received inference") if log.exists() else 0


def test_a_flood_of_large_requests_past_the_models_queue_is_refused_with_503(frontend):
    server, session = frontend
    config = model_config("fast_style")
    # With the worker busy, only the model's queue admits; slack of one batch for the aggregator.
    admitted_at_most = config["jobQueueSize"] + config["batchSize"]
    assert admitted_at_most < FLOOD
    body = padded_png(BODY_BYTES)

    def send(fault=None):
        return session.post(
            f"{server.inference_url}/predictions/fast_style",
            files={"image": ("big.png", body, "image/png")},
            data={"max_side_px": "32", **({"x_fault": fault} if fault else {})},
            timeout=600,
        ).status_code

    with ThreadPoolExecutor(FLOOD + 1) as pool:
        before = batches_received(server)
        holder = pool.submit(send, f"sleep:{HOLD_S}")
        deadline = time.monotonic() + 120
        while batches_received(server) == before and time.monotonic() < deadline:
            time.sleep(0.2)  # until the worker has the holder: the flood meets a busy worker
        assert batches_received(server) > before, "the worker never took the first request"
        statuses = list(pool.map(lambda _: send(), range(FLOOD)))
        assert holder.result() == 200

    assert set(statuses) <= {200, 503}, statuses
    assert statuses.count(503) >= FLOOD - admitted_at_most, statuses
    assert statuses.count(200) >= 1, statuses
    assert server.process.poll() is None  # the frontend is still running
    assert session.get(f"{server.inference_url}/ping", timeout=30).json()["status"] == "Healthy"
    small = session.post(
        f"{server.inference_url}/predictions/fast_style",
        files={"image": ("small.png", padded_png(4096), "image/png")},
        data={"max_side_px": "32"},
        timeout=120,
    )
    assert small.status_code == 200
