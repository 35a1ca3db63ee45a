"""The full-size SD 1.5 UNet (random weights) in process: eager fp32, eager bf16, bf16
channels_last and the compiled fast path (imagelab/diffusion/fast_path.py's own compiler),
static shapes with and without freezing and dynamic shapes; seconds per call at batch 1 and 2
and compile time cold (empty cache) and warm (a second process on the cache the first left).

Each variant runs in its own process, so a compile is never helped by a graph the process
already holds and a warm start is what a restarted worker sees:

    python -m loadtests.bench.sd15_fast_path --out fast_path.json [--quick]
    python -m loadtests.bench.sd15_fast_path --variant compiled --cache DIR --out one.json
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from imagelab.diffusion.fast_path import inductor_compile
from loadtests.bench.measure import PeakRss, time_calls, write_results
from loadtests.bench.sd15 import TEXT_TOKENS, VAE_SCALE, sd15_unet

ROWS = (1, 2)  # unguided (LCM) and guided (classifier-free guidance)
# (variant, options) in run order; "warm" reuses the cache of the "compiled" run before it.
PLAN = (
    ("eager", {}),
    ("compiled", {"freezing": False}),
    ("compiled", {"freezing": False, "warm": True}),
    ("compiled", {"freezing": True}),
    ("compiled", {"freezing": False, "dynamic": True}),
)


def unet_inputs(rows: int, latent_px: int, dtype: torch.dtype, channels_last: bool):
    generator = torch.Generator().manual_seed(rows)
    sample = torch.randn(rows, 4, latent_px, latent_px, generator=generator).to(dtype)
    if channels_last:
        sample = sample.to(memory_format=torch.channels_last)
    context = torch.randn(rows, TEXT_TOKENS, 768, generator=generator).to(dtype)
    return sample, torch.tensor([500]), context


def timed_unet(forward, rows: int, latent_px: int, dtype: torch.dtype, channels_last: bool):
    sample, timestep, context = unet_inputs(rows, latent_px, dtype, channels_last)
    return lambda: forward(sample, timestep, context, return_dict=False)


def measure_eager(size_px: int, runs: int) -> dict:
    torch.manual_seed(0)
    unet, latent_px, result = sd15_unet(), size_px // VAE_SCALE, {}
    with torch.inference_mode():
        for name, dtype, channels_last in (
            ("fp32", torch.float32, False),
            ("bf16", torch.bfloat16, False),
            ("bf16_channels_last", torch.bfloat16, True),
        ):
            unet.to(dtype=dtype, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
            for rows in ROWS:
                result[f"{name}_batch{rows}"] = time_calls(
                    timed_unet(unet, rows, latent_px, dtype, channels_last), runs
                )
    return result


def measure_compiled(size_px: int, runs: int, cache: Path, freezing: bool, dynamic: bool) -> dict:
    """The first call per row count is the compile (or the cache load); then timed calls."""
    torch.manual_seed(0)
    unet = sd15_unet().to(dtype=torch.bfloat16, memory_format=torch.channels_last)
    latent_px, result = size_px // VAE_SCALE, {}
    compiled = inductor_compile(unet.forward, freezing, cache, dynamic=dynamic)
    with torch.inference_mode():
        for rows in ROWS:
            call = timed_unet(compiled, rows, latent_px, torch.bfloat16, True)
            started = time.perf_counter()
            call()
            result[f"first_call_batch{rows}_s"] = round(time.perf_counter() - started, 2)
        result["compile_s"] = round(sum(result[f"first_call_batch{rows}_s"] for rows in ROWS), 1)
        for rows in ROWS:
            call = timed_unet(compiled, rows, latent_px, torch.bfloat16, True)
            result[f"batch{rows}"] = time_calls(call, runs, warmup=0)
        if dynamic:  # one graph for every size: another size must not recompile
            other_px = latent_px - 8  # 64 px smaller
            started = time.perf_counter()
            timed_unet(compiled, 1, other_px, torch.bfloat16, True)()
            result[f"first_call_batch1_{other_px * VAE_SCALE}px_s"] = round(time.perf_counter() - started, 2)
    from torch._dynamo.utils import counters

    result["graph_breaks"] = sum(counters["graph_break"].values())
    result["dynamo_frames"] = dict(counters["frames"])
    return result


def run_variant(args: argparse.Namespace) -> None:
    with PeakRss() as rss:
        if args.variant == "eager":
            result = measure_eager(args.size_px, args.runs)
        else:
            result = measure_compiled(args.size_px, args.runs, args.cache, args.freezing, args.dynamic)
    result["peak_rss_mib"] = rss.peak_mib
    write_results(args.out, result)


def measure_all(size_px: int, runs: int, log=print) -> dict:
    """Every variant of PLAN in a fresh process; returns {label: result}."""
    results = {}
    with tempfile.TemporaryDirectory(prefix="sd15-fast-path-") as scratch:
        scratch = Path(scratch)
        for index, (variant, options) in enumerate(PLAN):
            label = "_".join([variant, *(k for k, v in options.items() if v is True)])
            cache = scratch / label.removesuffix("_warm")  # warm: the cache its cold run left
            out = scratch / f"{index}.json"
            command = [sys.executable, "-m", __name__, "--variant", variant, "--out", str(out)]
            command += ["--size-px", str(size_px), "--runs", str(runs), "--cache", str(cache)]
            command += [f"--{k}" for k, v in options.items() if v is True and k != "warm"]
            log(f"sd15 fast path: {label} ...")
            started = time.perf_counter()
            finished = subprocess.run(command, capture_output=True, text=True)
            if finished.returncode != 0:
                results[label] = {"error": finished.stderr[-2000:]}
                continue
            results[label] = {**json.loads(out.read_text()), "process_s": round(time.perf_counter() - started, 1)}
            log(f"sd15 fast path: {label}: {json.dumps(results[label])}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON results file")
    parser.add_argument("--quick", action="store_true", help="256 px, one run each")
    parser.add_argument("--variant", choices=("eager", "compiled"), help="one variant, in this process")
    parser.add_argument("--size-px", type=int, default=512)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--cache", type=Path, help="inductor cache folder (--variant compiled)")
    parser.add_argument("--freezing", action="store_true")
    parser.add_argument("--dynamic", action="store_true")
    args = parser.parse_args()
    if args.variant is not None:
        run_variant(args)
        return
    size_px, runs = (256, 1) if args.quick else (args.size_px, args.runs)
    write_results(args.out, {"size_px": size_px, "variants": measure_all(size_px, runs)})


if __name__ == "__main__":
    main()
