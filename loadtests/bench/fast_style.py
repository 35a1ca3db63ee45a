"""fast_style at 512x512, in one run: in-process throughput of the fp32 eager network plus the
server's codec work (the baseline: its fastest batch size) and of the network as the archive
serves it (bf16 where the CPU has it natively, channels_last, one image per call when
batch_invariant), each over batch sizes 1-8 (the in-process batching curve), against throughput
served by TorchServe at saturation with every process's CPU counted (clients, Java frontend,
worker); the served batching curve (batchSize x maxBatchDelay x clients); thread variants; a
per-request profile; GFLOP/s per core against the same-run matmul peaks.

    python -m loadtests.bench.fast_style --out fast_style.json [--quick] [--images 48] [--variants shipped,batch1]
"""

import io
import os
import resource
import threading
import time

import psutil
import requests
import skimage.data
import torch
import yaml
from PIL import Image

from archiver.capabilities import CAPABILITIES
from handlers.common.images import encode_image
from imagelab.devices import resolve_dtype
from imagelab.fast_style.stylize import batch_to_images, images_to_batch, inference_path, stylize
from imagelab.fast_style.transformer_net import TransformerNet
from loadtests.bench.fast_style_compile import compile_vs_eager
from loadtests.bench.measure import PeakRss, count_flops, matmul_peak_gflops, section_parser, write_results
from loadtests.bench.serving import frontend_metrics, frontend_pid, running_server, worker_pids

SIDE_PX = 512
SHIPPED = yaml.safe_load(CAPABILITIES["fast_style"].config.read_text())
SHIPPED_BATCH = SHIPPED["batchSize"]
SHIPPED_DELAY_MS = SHIPPED["maxBatchDelay"]
SHIPPED_QUEUE = SHIPPED["jobQueueSize"]
# Images per network call as the handler runs them (handlers/services/fast_style.py _calls).
SHIPPED_PER_CALL = 1 if (SHIPPED.get("handler") or {}).get("batch_invariant", True) else SHIPPED_BATCH
IN_PROCESS_BATCHES = (1, 2, 4, 8)


def saturating_clients(batch_size: int) -> int:
    """Twice the batch, so one batch waits while the other runs, but never more than the job
    queue holds: clients past it get the frontend's 503 in the opening burst."""
    return max(2, min(2 * batch_size, SHIPPED_QUEUE))


# Served variants: (name, model-config changes, config.properties overrides, environment,
# concurrent clients[, image side]). The batchN rows are the served batching curve at
# saturation; the 4-client points leave a batch of 8 under-filled, where maxBatchDelay is paid
# on every batch; the 64 px pair is where the per-request cost, not the network, dominates.
SMALL_PX = 64
VARIANTS = (
    ("shipped", {}, {}, {}, saturating_clients(SHIPPED_BATCH)),
    *((f"batch{b}", {"batchSize": b}, {}, {}, saturating_clients(b)) for b in IN_PROCESS_BATCHES if b != SHIPPED_BATCH),
    ("batch8_4clients", {"batchSize": 8}, {}, {}, 4),
    ("batch8_delay200_4clients", {"batchSize": 8, "maxBatchDelay": 200}, {}, {}, 4),
    (
        "netty1",
        {},
        {"number_of_netty_threads": "1", "netty_client_threads": "1"},
        {},
        saturating_clients(SHIPPED_BATCH),
    ),
    ("omp_passive", {}, {}, {"OMP_WAIT_POLICY": "PASSIVE"}, saturating_clients(SHIPPED_BATCH)),
    ("shipped_64px", {}, {}, {}, saturating_clients(SHIPPED_BATCH), SMALL_PX),
    ("batch1_64px", {"batchSize": 1}, {}, {}, saturating_clients(SHIPPED_BATCH), SMALL_PX),
)
QUICK_VARIANTS = ("shipped", "batch1" if SHIPPED_BATCH != 1 else "batch8")


def photo_512() -> Image.Image:
    return Image.fromarray(skimage.data.astronaut())  # 512x512 RGB


def photo_jpeg(side_px: int = SIDE_PX) -> bytes:
    buffer = io.BytesIO()
    photo_512().resize((side_px, side_px), Image.Resampling.BICUBIC).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def served_network() -> tuple:
    """-> (TransformerNet as the shipped archive runs it, its dtype name): the handler's
    choices (FastStyleSettings dtype, channels_last always: handlers/services/fast_style.py)."""
    settings = SHIPPED.get("handler") or {}
    dtype = resolve_dtype(settings.get("dtype", "auto"), "cpu")
    torch.manual_seed(0)
    model = TransformerNet().eval().to(dtype=dtype, memory_format=torch.channels_last)
    return model, str(dtype).removeprefix("torch.")


def sustained(model: TransformerNet, batch_size: int, min_s: float) -> dict:
    """The worker's work at saturation, in this process, for at least `min_s` seconds: per call
    decode `batch_size` JPEGs, the tensor conversions, the network, a PNG encode per output.
    Sustained, because one or two calls ran ~25 % faster than a window as long as the served
    one on the 2-core VM (BENCHMARKS.md fast_style), which once read as serving overhead."""
    jpeg = photo_jpeg()
    stylize(model, images_to_batch([photo_512()]))  # warm-up at batch 1: kernel selection

    def call() -> float:
        photos = [Image.open(io.BytesIO(jpeg)).convert("RGB") for _ in range(batch_size)]
        batch = images_to_batch(photos)
        started = time.perf_counter()
        out = stylize(model, batch)
        network_s = time.perf_counter() - started
        for image in batch_to_images(out):
            encode_image(image, "png", 90)
        return network_s

    calls, network_s = 0, 0.0
    cpu = time.process_time()
    started = time.perf_counter()
    while calls < 2 or time.perf_counter() - started < min_s:
        network_s += call()
        calls += 1
    wall = time.perf_counter() - started
    images = calls * batch_size
    return {
        "batch_size": batch_size,
        "calls": calls,
        "wall_s": wall,
        "images_per_s": images / wall,  # network + codec, as the worker does it
        "network_images_per_s": images / network_s,
        "cpu_s_per_image": (time.process_time() - cpu) / images,
    }


def codec_s_per_image(runs: int = 5) -> dict:
    """What the server does around the network for each image: JPEG decode to RGB, the
    tensor conversions, PNG encode (compress_level as served) of the 512 px output."""
    jpeg = photo_jpeg()
    output = photo_512()

    def decode():
        Image.open(io.BytesIO(jpeg)).convert("RGB").load()

    def tensors():
        batch_to_images(images_to_batch([output]).float())

    def encode():
        encode_image(output, "png", 90)

    costs = {}
    for name, fn in (("jpeg_decode", decode), ("tensor_conversion", tensors), ("png_encode", encode)):
        fn()
        started = time.perf_counter()
        for _ in range(runs):
            fn()
        costs[name] = (time.perf_counter() - started) / runs
    costs["total"] = sum(costs.values())
    return costs


def in_process(min_s: float, batch_sizes: tuple) -> dict:
    """The baseline (fp32 NCHW eager network + codec) and the served network + codec at each
    batch size, sustained for `min_s` each, with this process's torch threads and no clients."""
    torch.manual_seed(0)
    baseline = TransformerNet().eval()
    fast, dtype = served_network()
    results = {
        "served_dtype": dtype,
        "served_path": inference_path(fast),
        "codec_s": codec_s_per_image(),
        "fp32": {f"batch{b}": sustained(baseline, b, min_s) for b in batch_sizes},
        "served_config": {f"batch{b}": sustained(fast, b, min_s) for b in batch_sizes},
    }
    del baseline, fast
    return results


def png_levels(side_px: int = 2048) -> list:
    """PNG encode seconds and bytes per compress_level for a stylised-looking large output
    (the photo upscaled: real outputs compress less than flat synthetic images)."""
    image = photo_512().resize((side_px, side_px), Image.Resampling.BICUBIC)
    rows = []
    for level in (0, 1, 3, 6):
        started = time.perf_counter()
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", compress_level=level)
        rows.append({"level": level, "seconds": time.perf_counter() - started, "bytes": buffer.tell()})
    return rows


def flops_per_image() -> int:
    model = TransformerNet().eval()
    return count_flops(lambda: stylize(model, images_to_batch([photo_512()])))


class CpuMeter:
    """CPU seconds (user + system) used between enter and exit by this process (the clients'
    threads: the benchmark process does nothing else meanwhile but a memory sampler) and by
    the given pids (frontend, worker)."""

    def __init__(self, pids: dict):
        self.processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.used_s: dict = {}

    @staticmethod
    def _cpu(process) -> float:
        times = process.cpu_times()
        return times.user + times.system

    def __enter__(self) -> "CpuMeter":
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self._start = {"clients": usage.ru_utime + usage.ru_stime}
        self._start.update({name: self._cpu(p) for name, p in self.processes.items()})
        return self

    def __exit__(self, *exc) -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.used_s["clients"] = usage.ru_utime + usage.ru_stime - self._start["clients"]
        for name, process in self.processes.items():
            self.used_s[name] = self._cpu(process) - self._start[name]


def saturate(
    url: str, key: str, clients: int, requests_per_client: int, profile: bool = False, side_px: int = SIDE_PX
) -> dict:
    """`clients` threads each posting the photo `requests_per_client` times back to back (a
    fixed count rather than a fixed time, so whole batches finish inside the measurement).
    profile: ask for JSON (base64 PNG plus metadata) to collect the handler's timings_ms."""
    body = photo_jpeg(side_px)
    fields = {"style": "candy", "max_side_px": str(side_px)}
    if profile:
        fields["response_format"] = "json"
    latencies_s, failures, timings = [], [], []
    lock = threading.Lock()

    def client():
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {key}"
        for _ in range(requests_per_client):
            sent = time.perf_counter()
            answer = session.post(
                f"{url}/predictions/fast_style",
                files={"image": ("a.jpg", body, "image/jpeg")},
                data=fields,
                timeout=600,
            )
            elapsed = time.perf_counter() - sent
            with lock:
                if answer.status_code != 200:
                    failures.append(answer.status_code)
                    continue
                latencies_s.append(elapsed)
                if profile:
                    document = answer.json()
                    timings.append({**document["timings_ms"], "batch_size": document.get("batch_size")})

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies_s.sort()
    result = {
        "clients": clients,
        "duration_s": elapsed,
        "images": len(latencies_s),
        "failures": len(failures),
        "failure_statuses": {str(s): failures.count(s) for s in sorted(set(failures))},  # 503: admission split
        "images_per_s": len(latencies_s) / elapsed,
        "latency_s_p50": latencies_s[len(latencies_s) // 2] if latencies_s else None,
        "latency_s_mean": sum(latencies_s) / len(latencies_s) if latencies_s else None,
        "latency_s_max": latencies_s[-1] if latencies_s else None,
    }
    if profile:
        result["handler_timings_ms"] = timings
    return result


def served(
    name: str, changes: dict, overrides: dict, environment: dict, clients: int, images: int, side_px: int = SIDE_PX
) -> dict:
    """A TorchServe with the fast_style archive rebuilt with `changes`, `clients` posting
    `images` photos of `side_px` in all; CPU of clients, frontend and worker counted over the window."""
    with running_server(("fast_style",), changes or None, overrides=overrides, environment=environment) as server:
        key = server.keys().inference
        batch = changes.get("batchSize", SHIPPED_BATCH)
        saturate(server.inference_url, key, clients=batch, requests_per_client=1, side_px=side_px)  # warm-up
        pid = worker_pids(server, "fast_style")[0]
        before = frontend_metrics(server, "fast_style")
        with PeakRss(pid) as rss, CpuMeter({"frontend": frontend_pid(server), "worker": pid}) as cpu:
            result = saturate(server.inference_url, key, clients, max(1, images // clients), side_px=side_px)
        after = frontend_metrics(server, "fast_style")
        if name == "shipped":
            result["profile"] = saturate(server.inference_url, key, clients, 1, profile=True)
            result["profile"]["frontend_metrics_delta"] = _delta(frontend_metrics(server, "fast_style"), after)
    result.update(
        name=name,
        side_px=side_px,
        batch_size=batch,
        max_batch_delay_ms=changes.get("maxBatchDelay", SHIPPED_DELAY_MS),
        overrides=overrides,
        environment=environment,
        cpu_s=cpu.used_s,
        frontend_metrics_delta=_delta(after, before),
        worker_peak_rss_mib=rss.peak_mib,
    )
    return result


def _delta(after: dict, before: dict) -> dict:
    return {name: after[name] - before.get(name, 0.0) for name in after}


def main() -> None:
    parser = section_parser(__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, help="images per served measurement (default 48, quick 16)")
    parser.add_argument("--variants", help=f"served variants, comma-separated, of {[v[0] for v in VARIANTS]}")
    args = parser.parse_args()
    min_s = 5.0 if args.quick else 15.0  # per in-process point: about the served window
    images = args.images or (16 if args.quick else 48)
    batch_sizes = tuple(sorted({1, SHIPPED_PER_CALL, SHIPPED_BATCH})) if args.quick else IN_PROCESS_BATCHES
    results = {
        "side_px": SIDE_PX,
        "quick": args.quick,
        "cores": len(os.sched_getaffinity(0)),
        "shipped": {
            "batch_size": SHIPPED_BATCH,
            "max_batch_delay_ms": SHIPPED_DELAY_MS,
            "job_queue_size": SHIPPED_QUEUE,
            "images_per_call": SHIPPED_PER_CALL,
        },
    }
    peak_s = 1.0 if args.quick else 2.0
    results["matmul_peak"] = [matmul_peak_gflops(d, 2048, peak_s) for d in (torch.float32, torch.bfloat16)]
    results["flops_per_image"] = flops_per_image()
    results["png_levels_2048"] = png_levels()
    results["compile"] = compile_vs_eager(next(served_network()[0].parameters()).dtype)
    # In-process before and after serving: the machine is shared, so the spread between the
    # two says how much the load drifted while the servers ran.
    results["in_process_before"] = in_process(min_s, batch_sizes)
    names = args.variants.split(",") if args.variants else QUICK_VARIANTS if args.quick else [v[0] for v in VARIANTS]
    if "shipped" not in names:
        parser.error("--variants must include shipped (the headline and the profile)")
    results["served"] = {}
    for name, changes, overrides, environment, clients, *side in VARIANTS:
        if name in names:
            print(f"fast_style served: {name} ...", flush=True)
            count = images if name == "shipped" else images * 2 // 3  # the headline gets the most
            if side:  # small images: as many seconds of work, many more requests
                count *= (SIDE_PX // side[0]) ** 2 // 8
            results["served"][name] = served(name, changes, overrides, environment, clients, count, *side)
            write_results(args.out, results)  # what a stopped run measured so far stays readable
    results["in_process_after"] = in_process(min_s, batch_sizes)
    write_results(args.out, results)


if __name__ == "__main__":
    main()
