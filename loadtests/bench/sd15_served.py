"""Full-size SD 1.5 served: end-to-end seconds per image through a real TorchServe, on the
full-size random-weight models (weightstore/full_size.py; cost does not depend on weight values),
beside the same run's in-process eager bf16 UNet call, matmul peak and the worker's start-up
time and peak RSS.

    python -m loadtests.bench.sd15_served --out sd15_served.json [--quick] [--with-txt2img] [--limit-min M]
    python -m loadtests.bench.sd15_served --out sd15_served.json --recompose   # no serving
    (--quick: 256 px, animals in LCM mode only)

Served at 512 px, one request at a time: animals with its CPU default (LCM, 4 steps, guidance 1)
with each decoder; animals guided (dpmpp, 7.5) for a few steps; txt2img with the monet style for
a few guided steps, each decoder; one whole default txt2img image (dpmpp, 25 steps, 7.5, style
none); an over-budget request (100 steps at 1024 px), which must come back 422 TooExpensive.
Configurations too slow to serve whole in the section's time (25 steps with a style, the seed's
20 and 100 steps) are *composed* from the same run's served parts (timings_ms: text encoding,
per-step denoise, decode, adapter swap, plus the serving overhead around them) and labelled so.
"""

import json
import multiprocessing
import os
import re
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import requests
import torch

from archiver.capabilities import CAPABILITIES
from loadtests.bench.machine import cpu_flags
from loadtests.bench.measure import count_flops, matmul_peak_gflops, section_parser, time_calls, write_results
from loadtests.bench.serving import build_store
from operations.server import Ports, TorchServe
from weightstore.full_size import cache_root, ensure_full_size_weights, link_sd15
from weightstore.layout import WeightsLayout

TEXT_TOKENS = 77
STARTUP_TIMEOUT_S = 1800  # a full-size worker loads gigabytes and calibrates before it is ready
# The full run's archives get a longer time budget (and responseTimeout above it): on a loaded
# machine the worker's calibrated estimate for a 512 px image passes the shipped 540 s and the
# images this section exists to time would be refused. Admission still runs: the over-budget
# request below is refused against this budget. --quick keeps the shipped budget.
BENCH_TIME_BUDGET_S = 2400
REQUEST_TIMEOUT_S = 900
REPORTED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "amx_bf16", "amx_tile", "amx_int8")
ANIMAL = "tiger"
PROMPT = "a harbour at dawn, oil painting"
OVER_BUDGET = {"steps": 100, "width": 1024, "height": 1024, "scheduler": "dpmpp", "guidance": 7.5}
SHORT_GUIDED_STEPS = 2  # the short guided runs that measure a (styled) guided step
GUIDED = {"scheduler": "dpmpp", "guidance": 7.5}
GUIDED_ROWS = 2  # classifier-free guidance: the UNet runs the prompt and the empty prompt
LCM_FULL, LCM_FAST = "animals LCM-4 full", "animals LCM-4 fast"
LCM_FAST_FIRST = "animals LCM-4 fast (first request: fuses the LoRAs, first 512 px kernels)"
MONET_FAST = f"txt2img monet dpmpp-{SHORT_GUIDED_STEPS} fast"
ANIMALS_GUIDED_FAST = f"animals dpmpp-{SHORT_GUIDED_STEPS} fast"
DEFAULT_STEPS = 25  # txt2img's default request: dpmpp, 25 steps, guidance 7.5
DEFAULT_FULL = f"txt2img none dpmpp-{DEFAULT_STEPS} full (the default request)"
SEED_TABLE_STEPS = (20, 100)  # the animals seed's table, guided at 512 px
LOG_PATTERNS = (
    re.compile(r"speed at \d+ px: .*"),
    re.compile(r"base model .*, dtype .*, device .*"),
    re.compile(r"UNet path: .*"),
)


# --- composition (pure): a served image's seconds from its measured parts -----------------------


@dataclass(frozen=True)
class ServedParts:
    """One served request: the client's wall-clock seconds and the worker's own timings_ms."""

    steps: int
    wall_s: float
    text_s: float
    denoise_s: float
    decode_s: float
    swap_s: float

    @staticmethod
    def from_response(steps: int, wall_s: float, timings_ms: dict) -> "ServedParts":
        ms = {k: float(timings_ms.get(k, 0.0)) / 1e3 for k in ("text_encode", "denoise", "decode", "adapter_swap")}
        return ServedParts(steps, wall_s, ms["text_encode"], ms["denoise"], ms["decode"], ms["adapter_swap"])

    @property
    def step_s(self) -> float:
        return self.denoise_s / self.steps

    @property
    def overhead_s(self) -> float:
        """Everything the worker's stages do not time: queueing, batching delay, request
        decoding, PNG/JSON encoding and HTTP, on the client's clock."""
        return max(0.0, self.wall_s - (self.text_s + self.denoise_s + self.decode_s + self.swap_s))


def compose_s(
    steps: int, step_s: float, text_s: float, decode_s: float, overhead_s: float, swap_s: float = 0.0
) -> float:
    """Seconds of one served image of `steps` steps from measured per-stage costs."""
    return text_s + steps * step_s + decode_s + swap_s + overhead_s


def median_parts(runs: list) -> ServedParts:
    """Stage-wise medians of several runs of one configuration."""
    return ServedParts(
        runs[0].steps,
        *(
            statistics.median(getattr(r, k) for r in runs)
            for k in ("wall_s", "text_s", "denoise_s", "decode_s", "swap_s")
        ),
    )


def gflops_per_core(flops: float, seconds: float, cores: int) -> float:
    return flops / seconds / 1e9 / cores


# --- in process: the bare UNet call, as the worker runs it (bf16, channels_last, eager) ----------


def measure_unet_in_process(unet_dir: Path, size_px: int, runs: int) -> dict:
    from diffusers import UNet2DConditionModel

    started = time.perf_counter()
    unet = UNet2DConditionModel.from_pretrained(unet_dir).eval().to(torch.bfloat16, memory_format=torch.channels_last)
    result = {"load_s": time.perf_counter() - started, "dtype": "bfloat16", "layout": "channels_last", "calls": {}}
    latent_px = size_px // 8
    with torch.inference_mode():
        for batch in (1, 2):
            sample = torch.randn(batch, 4, latent_px, latent_px).to(torch.bfloat16)  # (B, C, h, w)
            context = torch.randn(batch, TEXT_TOKENS, 768).to(torch.bfloat16)  # (B, tokens, width)
            sample = sample.contiguous(memory_format=torch.channels_last)

            def call(sample=sample, context=context, unet=unet):
                return unet(sample, torch.tensor(500), encoder_hidden_states=context, return_dict=False)

            if batch == 1:
                flops = count_flops(call)  # doubles as the warm-up (oneDNN builds kernels per shape)
                timing = time_calls(call, runs, warmup=0)
            else:  # linear in the batch; one cold call, to keep the section short on a loaded machine
                flops, timing = 2 * result["calls"]["batch1"]["flops"], time_calls(call, 1, warmup=0)
            result["calls"][f"batch{batch}"] = {"flops": flops, "warm": batch == 1, **asdict(timing)}
    return result


# --- served --------------------------------------------------------------------------------------


def bench_layout() -> WeightsLayout:
    """A weights root whose sd15/ is the full-size cache (as a user's download would be), kept
    beside the cache so the LoRA companions synthesised for that base are made once."""
    full_size = ensure_full_size_weights()
    root = cache_root() / "served-bench-weights"
    root.mkdir(parents=True, exist_ok=True)
    link_sd15(full_size, root)
    return WeightsLayout(root)


def worker_peak_rss_mib(pid: int) -> float:
    """The kernel's high-water mark of the worker's resident set (VmHWM): start-up included."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # the worker is gone (killed by the OS, restarted by TorchServe)
        return float("nan")
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Served:
    """One TorchServe serving the full-size models; start-up timed per model."""

    def __init__(self, scratch: Path, models: tuple, time_budget_s: float | None = None):
        store = scratch / "store"
        layout = bench_layout()
        archives = {}
        for model in models:  # one archive per model: each has its own `handler:` section
            config = {"startupTimeout": STARTUP_TIMEOUT_S}
            if time_budget_s:
                handler = dict(CAPABILITIES[model].read_config()["handler"], time_budget_s=time_budget_s)
                config.update(handler=handler, responseTimeout=int(time_budget_s) + 60)
            archives.update(build_store(store, (model,), config, layout=layout))
        self.server = TorchServe(scratch / "work", store, archives, Ports.free())
        self.models = models
        self.session = requests.Session()

    def start(self) -> dict:
        """-> {model: seconds from TorchServe's start to its first READY worker}."""
        started = time.monotonic()
        self.server.start()
        ready = {}
        while len(ready) < len(self.models):
            if self.server.process.poll() is not None or time.monotonic() - started > STARTUP_TIMEOUT_S:
                raise RuntimeError(f"TorchServe did not get {self.models} ready:\n{self.server.log_tail()}")
            for model in self.models:
                if model not in ready and self._ready(model):
                    ready[model] = time.monotonic() - started
            time.sleep(1.0)
        self.session.headers["Authorization"] = f"Bearer {self.server.keys().inference}"
        return ready

    def _ready(self, model: str) -> bool:
        try:
            answer = self._management(f"/models/{model}")
            return any(w["status"] == "READY" for w in answer[0]["workers"])
        except (OSError, ValueError, KeyError, requests.RequestException):
            return False

    def _management(self, path: str):
        headers = {"Authorization": f"Bearer {self.server.keys().management}"}
        answer = requests.get(f"{self.server.management_url}{path}", headers=headers, timeout=60)
        answer.raise_for_status()
        return answer.json()

    def describe(self, model: str) -> dict:
        [described] = self._management(f"/models/{model}?customized=true")
        custom = described.get("customizedMetadata") or {}
        custom = json.loads(custom) if isinstance(custom, str) else custom
        pids = [int(w["pid"]) for w in described["workers"] if w.get("pid")]
        return {"pids": pids, "speed": custom.get("speed"), "synthetic_weights": custom.get("synthetic_weights")}

    def predict(self, model: str, fields: dict) -> tuple:
        """-> (status, seconds on the client's clock, JSON body)."""
        started = time.perf_counter()
        answer = self.session.post(
            f"{self.server.inference_url}/predictions/{model}",
            json={**fields, "response_format": "json", "seed": 7},
            timeout=REQUEST_TIMEOUT_S,
        )
        wall_s = time.perf_counter() - started
        try:
            body = answer.json()
        except ValueError:
            body = {"text": answer.text[:500]}
        body.pop("images", None)
        return answer.status_code, wall_s, body

    def log_lines(self) -> list:
        """The handlers' start-up lines: calibration, dtype and device, UNet path."""
        found = []
        for path in sorted((self.server.workdir / "logs").glob("*.log")):
            for line in path.read_text(errors="replace").splitlines():
                for pattern in LOG_PATTERNS:
                    match = pattern.search(line)
                    if match:
                        found.append(match.group(0)[:400])
        return sorted(set(found))

    def stop(self) -> None:
        self.server.stop()


# --- the run ---------------------------------------------------------------------------------


class Recorder:
    """Every served request of the run, in order, with what the worker said about it."""

    def __init__(self, served: Served, size_px: int, checkpoint=None):
        self.served = served
        self.size_px = size_px
        self.checkpoint = checkpoint  # called with the recorder after every request
        self.requests = []
        self.skipped = []  # optional repeats left out by the section's time limit

    def send(self, label: str, model: str, fields: dict) -> dict:
        fields = {"width": self.size_px, "height": self.size_px, **fields}
        status, wall_s, body = self.served.predict(model, fields)
        record = {"label": label, "model": model, "fields": fields, "status": status, "wall_s": wall_s}
        if status == 200:
            record["timings_ms"] = body.get("timings_ms", {})
            record["parameters"] = {k: v for k, v in body.get("parameters", {}).items() if k != "prompt"}
        else:
            record["error"] = {k: body.get(k) for k in ("type", "message", "estimated_s", "budget_s", "fits")}
        print(f"  {label}: {status} in {wall_s:.1f} s", flush=True)
        self.requests.append(record)
        if self.checkpoint:
            self.checkpoint(self)
        return record

    def parts(self, label: str) -> ServedParts | None:
        runs = [
            ServedParts.from_response(r["parameters"]["steps"], r["wall_s"], r["timings_ms"])
            for r in self.requests
            if r["label"] == label and r["status"] == 200
        ]
        return median_parts(runs) if runs else None


def serve(rec: Recorder, quick: bool, with_txt2img: bool, limit_s: float, started: float) -> None:
    """The essential requests first (each decoder's LCM image, one guided step cost, the
    refusals; with txt2img a styled guided step and the default request), then repeats while the
    section is under its time limit."""
    animal = {"animal": ANIMAL}  # no scheduler, steps or guidance: the CPU default (LCM-4, guidance 1)
    rec.send(LCM_FAST_FIRST, "animals", {**animal, "decoder": "fast"})
    rec.send(LCM_FULL, "animals", {**animal, "decoder": "full"})
    if not quick:
        rec.send(ANIMALS_GUIDED_FAST, "animals", {**animal, **GUIDED, "steps": SHORT_GUIDED_STEPS, "decoder": "fast"})
    if with_txt2img:
        fields = {"prompt": PROMPT, "style": "monet", **GUIDED, "steps": SHORT_GUIDED_STEPS, "decoder": "fast"}
        rec.send(MONET_FAST, "txt2img", fields)
        # The default request as a user sends it: only the prompt (dpmpp, 25 steps, 7.5 by default).
        rec.send(DEFAULT_FULL, "txt2img", {"prompt": PROMPT, "style": "none"})
    for _ in range(3):
        rec.send("over budget (100 steps, 1024 px)", "animals", {**animal, **OVER_BUDGET})
    extras = [
        (LCM_FAST, "animals", {**animal, "decoder": "fast"}),
        (LCM_FULL, "animals", {**animal, "decoder": "full"}),
    ]
    for label, model, fields in extras:
        if time.perf_counter() - started > limit_s:
            rec.skipped.append(label)
            continue
        rec.send(label, model, fields)


def configuration(label: str, seconds: float, how: str, parts: str) -> dict:
    return {"label": label, "seconds": seconds, "how": how, "from": parts}


def composed(label: str, steps: int, stepper: ServedParts, decoder: ServedParts, note: str) -> dict:
    """Steps (and text encoding, adapter swap) from `stepper`, decode and overhead from `decoder`."""
    seconds = compose_s(steps, stepper.step_s, stepper.text_s, decoder.decode_s, decoder.overhead_s, stepper.swap_s)
    return configuration(label, seconds, "composed", note)


def guided_parts(rec: Recorder) -> tuple:
    """-> (parts, label) of the run that measured the guided (batch-2) step."""
    for label in (DEFAULT_FULL, MONET_FAST, ANIMALS_GUIDED_FAST):
        parts = rec.parts(label)
        if parts:
            return parts, label
    lcm = rec.parts(LCM_FULL)
    if lcm:  # no guided run finished: a guided step is one UNet call on twice the rows
        return replace(lcm, denoise_s=GUIDED_ROWS * lcm.denoise_s), f"{LCM_FULL}, step x {GUIDED_ROWS} (batch 2 vs 1)"
    return None, None


def configurations(rec: Recorder) -> list:
    """Seconds per image by configuration: served where a whole image was served, else composed
    from the guided step of `guided_parts` and each decoder's cost measured on an LCM image (the
    same VAE and TAESD in both models)."""
    out = []
    decoders = {"full": rec.parts(LCM_FULL), "fast": rec.parts(LCM_FAST) or rec.parts(LCM_FAST_FIRST)}
    for name, parts in decoders.items():
        if parts:
            out.append(
                configuration(f"animals LCM-4, decoder={name}", parts.wall_s, "served", "median of the served runs")
            )
    if not rec.parts(LCM_FAST) and decoders["fast"] and decoders["full"]:  # only the first request was fast
        note = f"steps and text of '{LCM_FULL}', decode and overhead of the first request"
        out.append(composed("animals LCM-4, decoder=fast, warm", 4, decoders["full"], decoders["fast"], note))
    default = rec.parts(DEFAULT_FULL)
    monet = rec.parts(MONET_FAST)
    stepper, source = guided_parts(rec)
    for style in ("none", "monet"):
        for name in ("full", "fast"):
            label = f"txt2img {DEFAULT_STEPS} dpmpp 7.5, style {style}, decoder={name}"
            if style == "none" and name == "full" and default:
                out.append(configuration(label, default.wall_s, "served", "one image"))
            elif style == "monet" and name == "fast" and monet and monet.steps == DEFAULT_STEPS:
                out.append(configuration(label, monet.wall_s, "served", "one image"))
            elif stepper and decoders[name]:
                steps_from = monet if style == "monet" and monet else stepper
                out.append(
                    composed(
                        label,
                        DEFAULT_STEPS,
                        steps_from,
                        decoders[name],
                        f"step, text and swap of '{MONET_FAST if steps_from is monet else source}', "
                        f"decode and overhead of '{LCM_FULL if name == 'full' else LCM_FAST}'",
                    )
                )
    return out


def seed_table(rec: Recorder) -> list:
    """The animals seed's table: 20 and 100 guided steps at the run's size, plus the LCM mode."""
    rows = []
    stepper, source = guided_parts(rec)
    full = rec.parts(LCM_FULL)
    if stepper and full:
        for steps in SEED_TABLE_STEPS:
            note = f"step and text of '{source}', decode and overhead of '{LCM_FULL}'"
            rows.append(composed(f"dpmpp {steps} steps, guidance 7.5", steps, stepper, full, note))
    if full:
        rows.append(configuration("LCM 4 steps, guidance 1 (the CPU default)", full.wall_s, "served", "median"))
    return rows


def probe_seed_100(rec: Recorder, rows: list, budget_s: float) -> None:
    """Ask the worker for the seed's 100 steps only where the composed figure is far past the
    budget, so the answer is the refusal (an admitted one would hold the section for minutes)."""
    row = next((r for r in rows if r["label"].startswith("dpmpp 100")), None)
    if row is None or row["seconds"] < 1.5 * budget_s:
        return
    fields = {"animal": ANIMAL, **GUIDED, "steps": 100, "decoder": "full"}
    answer = rec.send("animals dpmpp-100 (seed table)", "animals", fields)
    row["served_answer"] = {"status": answer["status"], **answer.get("error", {})}


def summarize(results: dict, rec: Recorder, described: dict, after: dict) -> None:
    """Fill `results` with what the requests so far measured (also for a checkpoint mid-run)."""
    results["configurations"] = configurations(rec)
    results["seed_table"] = results.get("seed_table") or seed_table(rec)
    results["guided_step_from"] = guided_parts(rec)[1]
    results["workers"] = {
        m: {
            "peak_rss_mib": max((worker_peak_rss_mib(p) for p in after[m]["pids"]), default=float("nan")),
            "speed_at_start": described[m]["speed"],
            "speed_at_end": after[m]["speed"],
            "synthetic_weights": after[m]["synthetic_weights"],
        }
        for m in described
    }
    results["requests"] = rec.requests
    results["skipped"] = rec.skipped
    labels = dict.fromkeys(r["label"] for r in rec.requests)
    results["parts"] = {label: asdict(rec.parts(label)) for label in labels if rec.parts(label)}
    results["log_lines"] = rec.served.log_lines()


def in_process_unet(unet_dir: Path, size_px: int) -> dict:
    """In a child process, so its gigabytes are returned before the server starts."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(measure_unet_in_process, unet_dir, size_px, 1).result()


def recompose(path: Path) -> None:
    """Rebuild the composed figures of a results file from its recorded requests (after a change
    of the composition rules, or for a run stopped before its end), without serving again."""
    results = json.loads(Path(path).read_text())
    rec = Recorder(None, results["size_px"])
    rec.requests = results.get("requests", [])
    results["configurations"] = configurations(rec)
    seed_answers = {row["label"]: row.get("served_answer") for row in results.get("seed_table", [])}
    results["seed_table"] = [
        {**row, **({"served_answer": seed_answers[row["label"]]} if seed_answers.get(row["label"]) else {})}
        for row in seed_table(rec)
    ]
    results["guided_step_from"] = guided_parts(rec)[1]
    labels = dict.fromkeys(r["label"] for r in rec.requests)
    results["parts"] = {label: asdict(rec.parts(label)) for label in labels if rec.parts(label)}
    Path(path).write_text(json.dumps(results, indent=2))


def main() -> None:
    parser = section_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--limit-min", type=float, default=None, help="skip the optional repeats past this (25; 5 quick)"
    )
    parser.add_argument(
        "--with-txt2img",
        action="store_true",
        help="also serve txt2img: a monet guided step and the whole default request (25 steps; minutes)",
    )
    parser.add_argument("--recompose", action="store_true", help="only rebuild --out's composed figures")
    args = parser.parse_args()
    if args.recompose:
        return recompose(args.out)
    size_px = 256 if args.quick else 512
    limit_s = 60 * (args.limit_min or (5 if args.quick else 25))
    with_txt2img = args.with_txt2img and not args.quick
    models = ("animals", "txt2img") if with_txt2img else ("animals",)
    started = time.perf_counter()
    flags = cpu_flags()
    results = {
        "size_px": size_px,
        "quick": args.quick,
        "cpu_flags": [f for f in REPORTED_FLAGS if f in flags],
        "cores": torch.get_num_threads(),
        "load_average_start": os.getloadavg(),
        "served_models": list(models),
        "time_budget_s": None if args.quick else BENCH_TIME_BUDGET_S,
    }
    full_size = ensure_full_size_weights()
    peak_budget_s = 1.0 if args.quick else 3.0
    results["matmul_peak"] = [matmul_peak_gflops(d, 2048, peak_budget_s) for d in (torch.float32, torch.bfloat16)]

    with tempfile.TemporaryDirectory(prefix="imagelab-bench-sd15-served-") as scratch:
        built = time.perf_counter()
        served = Served(Path(scratch), models, None if args.quick else BENCH_TIME_BUDGET_S)
        results["archives_build_s"] = time.perf_counter() - built
        try:
            results["ready_s"] = served.start()
            print(f"ready: {results['ready_s']}", flush=True)
            described = {m: served.describe(m) for m in models}

            def checkpoint(rec: Recorder) -> None:  # a killed run still leaves what it measured
                summarize(results, rec, described, described)
                partial = {"partial": True, "section_s": time.perf_counter() - started, "in_process": None}
                write_results(args.out, {**results, **partial})

            rec = Recorder(served, size_px, checkpoint)
            serve(rec, args.quick, with_txt2img, limit_s, started)
            results["seed_table"] = seed_table(rec)
            probe_seed_100(rec, results["seed_table"], described["animals"]["speed"]["time_budget_s"])
            summarize(results, rec, described, {m: served.describe(m) for m in models})
        finally:
            served.stop()
    # After the server, in a process of its own: the shared machine's memory cannot hold both.
    results["in_process"] = in_process_unet(full_size.sd15 / "unet", size_px)
    results["section_s"] = time.perf_counter() - started
    results["load_average_end"] = os.getloadavg()
    write_results(args.out, results)


if __name__ == "__main__":
    main()
