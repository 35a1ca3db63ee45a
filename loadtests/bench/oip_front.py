"""The Open Inference Protocol front's added latency: fast_style at a small size, the same v2
request sent N times each way in one run, interleaved so the shared machine's load falls on every
way alike: straight to TorchServe (a plain HTTP POST of the body the front would forward),
through the front with tritonclient.http, and through the front with tritonclient.grpc.

    python -m loadtests.bench.oip_front --out oip_front.json [--quick]
"""

import contextlib
import io
import json
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import requests
import skimage.data
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from PIL import Image

from loadtests.bench.measure import section_args, write_results
from loadtests.bench.serving import running_server
from oipfront.process import start_front_process
from operations.server import free_ports

MODEL = "fast_style"
SIDE_PX = 64  # small: the network's time should not drown the front's
STYLE = "mosaic"
WAYS = ("direct_http", "front_http", "front_grpc")
FRONTS = ("front_http", "front_grpc")
WARMUP_PER_WAY = 3
FRONT_START_TIMEOUT_S = 120.0
HEADER_LENGTH = "Inference-Header-Content-Length"


@dataclass(frozen=True)
class Latency:
    requests: int
    median_ms: float
    p90_ms: float


@dataclass(frozen=True)
class Added:
    """A front's cost over the direct way: median and p90 differences, and the median ratio."""

    median_ms: float
    p90_ms: float
    ratio: float


def percentile(samples: list, q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), q in [0, 100]."""
    if not samples:
        raise ValueError("percentile of no samples")
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency(samples_s: list) -> Latency:
    ms = [s * 1e3 for s in samples_s]
    return Latency(len(ms), percentile(ms, 50), percentile(ms, 90))


def added(front: Latency, direct: Latency) -> Added:
    return Added(front.median_ms - direct.median_ms, front.p90_ms - direct.p90_ms, front.median_ms / direct.median_ms)


def summarize(samples_s: dict) -> dict:
    """{way: [seconds]} -> {"latency": {way: Latency}, "added": {front way: Added}} (as dicts)."""
    stats = {way: latency(samples) for way, samples in samples_s.items()}
    return {
        "latency": {way: asdict(s) for way, s in stats.items()},
        "added": {way: asdict(added(stats[way], stats["direct_http"])) for way in FRONTS if way in stats},
    }


def interleaved_order(ways: tuple, index: int) -> tuple:
    """Round `index` sends the ways rotated by `index` (ABC, BCA, CAB, ...), so none always goes first."""
    shift = index % len(ways)
    return ways[shift:] + ways[:shift]


def photo_jpeg() -> bytes:
    photo = Image.fromarray(skimage.data.astronaut()).resize((SIDE_PX, SIDE_PX))
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def v2_inputs(module, jpeg: bytes) -> list:
    """One tensor per field, shape [1, 1] (the batch dimension Triton's clients send)."""
    tensors = []
    for name, value in (("image", jpeg), ("style", STYLE.encode())):
        tensor = module.InferInput(name, [1, 1], "BYTES")
        tensor.set_data_from_numpy(np.array([value], dtype=object).reshape(1, 1))
        tensors.append(tensor)
    side = module.InferInput("max_side_px", [1, 1], "INT64")
    side.set_data_from_numpy(np.array([[SIDE_PX]], dtype=np.int64))
    return tensors + [side]


@contextlib.contextmanager
def running_front(server, scratch: Path):
    """-> (http port, grpc port, caller key) of a `python -m oipfront` in front of `server`, on free
    ports (8000/8001 may be taken by a `make serve` on the same machine)."""
    http_port, grpc_port = free_ports(2)
    key_file = scratch / "oip_key.json"
    with open(scratch / "front.log", "wb") as log:
        process = start_front_process(
            server.inference_url, server.management_url, server.workdir, http_port, grpc_port, key_file, log
        )
        try:
            deadline = time.monotonic() + FRONT_START_TIMEOUT_S
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"the v2 front exited: {(scratch / 'front.log').read_text()[-2000:]}")
                if key_file.is_file():
                    key = json.loads(key_file.read_text())["key"]
                    with contextlib.suppress(Exception):  # not listening yet
                        client = triton_http.InferenceServerClient(f"127.0.0.1:{http_port}")
                        if client.is_server_ready(headers={"authorization": f"Bearer {key}"}):
                            break
                if time.monotonic() > deadline:
                    raise RuntimeError("the v2 front did not become ready")
                time.sleep(0.2)
            yield http_port, grpc_port, key
        finally:
            process.terminate()
            process.wait(timeout=30)


def senders(server, http_port: int, grpc_port: int, front_key: str) -> dict:
    """{way: a function sending one request and raising unless it succeeded}."""
    jpeg = photo_jpeg()
    # Direct: the very body tritonclient.http sends the front, posted where the front forwards it.
    body, json_size = triton_http.InferenceServerClient.generate_request_body(v2_inputs(triton_http, jpeg))
    session = requests.Session()
    session.headers.update(
        {
            "Authorization": f"Bearer {server.keys().inference}",
            "Content-Type": "application/octet-stream",
            HEADER_LENGTH: str(json_size),
        }
    )
    http = triton_http.InferenceServerClient(f"127.0.0.1:{http_port}", network_timeout=300.0)
    grpc = triton_grpc.InferenceServerClient(f"127.0.0.1:{grpc_port}")
    http_inputs, grpc_inputs = v2_inputs(triton_http, jpeg), v2_inputs(triton_grpc, jpeg)

    def direct_http():
        answer = session.post(f"{server.inference_url}/predictions/{MODEL}", data=body, timeout=300)
        answer.raise_for_status()

    def front_http():
        http.infer(MODEL, http_inputs, headers={"authorization": f"Bearer {front_key}"})

    def front_grpc():
        grpc.infer(MODEL, grpc_inputs, headers={"authorization": f"Bearer {front_key}"}, client_timeout=300.0)

    return {"direct_http": direct_http, "front_http": front_http, "front_grpc": front_grpc}


def measure(send: dict, rounds: int) -> dict:
    """{way: [seconds]}: `rounds` rounds, each sending one request every way, sequentially."""
    for way in WAYS:
        for _ in range(WARMUP_PER_WAY):
            send[way]()
    samples = {way: [] for way in WAYS}
    for index in range(rounds):
        for way in interleaved_order(WAYS, index):
            started = time.perf_counter()
            send[way]()
            samples[way].append(time.perf_counter() - started)
    return samples


def main() -> None:
    args = section_args(__doc__.splitlines()[0])
    rounds = 50 if args.quick else 300
    with running_server((MODEL,)) as server, tempfile.TemporaryDirectory(prefix="imagelab-bench-oip-") as scratch:
        with running_front(server, Path(scratch)) as (http_port, grpc_port, key):
            samples = measure(senders(server, http_port, grpc_port, key), rounds)
    results = {"model": MODEL, "side_px": SIDE_PX, "style": STYLE, "rounds": rounds, "quick": args.quick}
    results.update(summarize(samples))
    results["samples_ms"] = {way: [s * 1e3 for s in values] for way, values in samples.items()}
    write_results(args.out, results)


if __name__ == "__main__":
    main()
