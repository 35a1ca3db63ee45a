"""Mixed-style batches (issue 19.2) in process on the full-size SD 1.5 UNet: a batch of 4
requests in 4 different styles as one pipeline call with per-row LoRAs (mixed_lora.py)
against 4 groups run one after another with each style fused into the weights (fuse.py),
with batch_invariant false (one UNet call per step for the batch, the GPU setting) and true
(the UNet per image anyway, the CPU default). Throughput and per-request latency; the latter
from the engine's own timings (a request is done when its group's decode of it is).

    python -m loadtests.bench.mixed_styles --out mixed_styles.json [--quick] [--device cuda]

On CUDA the pipeline runs fp16 (dtype auto); this machine has no GPU, so the CUDA rows are
written but were not run here. The styles are rank-8 random LoRAs over every attention
projection of the full-size UNet (the shape real style LoRAs take), made in a temp folder.
"""

import dataclasses
import gc
import statistics
import tempfile
import time
from pathlib import Path

import torch

from imagelab.diffusion.engine import DiffusionEngine
from imagelab.diffusion.jobs import DiffusionSettings, GenerationJob
from imagelab.diffusion.tiny import synthesize_tiny_lora
from loadtests.bench.measure import PeakRss, section_parser, write_results
from weightstore.full_size import ensure_full_size_weights

STYLES = ("style_a", "style_b", "style_c", "style_d")
PROMPTS = ("a harbour at dawn", "a fox in the snow", "a city street at night", "a bowl of fruit")
# (label, batch_invariant, mixed_style_batches)
CONFIGURATIONS = (
    ("one call, mixed rows", False, "on"),
    ("four fused groups", False, "off"),
    ("per-image calls, mixed rows", True, "on"),
    ("per-image calls, four fused groups", True, "off"),
)


def style_loras(folder: Path, unet_dir: Path) -> dict:
    return {
        name: synthesize_tiny_lora(folder / f"{name}.safetensors", unet_dir, seed=10 + i, rank=8, alpha=8.0)
        for i, name in enumerate(STYLES)
    }


def batch(size_px: int, steps: int) -> list[GenerationJob]:
    """Four requests that differ only in prompt, seed and style: one call when mixing."""
    return [
        GenerationJob(
            prompt,
            style=style,
            seed=i,
            steps=steps,
            width=size_px,
            height=size_px,
            scheduler="ddim",
            guidance_scale=7.5,
            decoder="fast",  # the decoder is the same work either way; the UNet is what differs
        )
        for i, (prompt, style) in enumerate(zip(PROMPTS, STYLES))
    ]


def _group_of(result) -> tuple:
    """Jobs of one pipeline call share its swap, text-encoding and denoising times."""
    t = result.timings_ms
    return t["adapter_swap"], t["text_encode"], t["denoise"]


def request_latencies_s(results) -> list[float]:
    """Per request, seconds from the batch's start to its images: its group's adapter swap,
    text encoding, denoising and the decodes up to its own, after every earlier group."""
    latencies, before_s, group_end_s = [], 0.0, 0.0
    previous = None
    for result in results:
        if _group_of(result) != previous:  # a new group starts after the last one's final decode
            before_s, previous = group_end_s, _group_of(result)
        done_s = before_s + (result.timings_ms["adapter_swap"] + result.timings_ms["total"]) / 1e3
        latencies.append(done_s)
        group_end_s = max(group_end_s, done_s)
    return latencies


def run_configuration(engine, base_settings, jobs, batch_invariant: bool, mode: str, repeats: int) -> dict:
    engine.settings = dataclasses.replace(base_settings, batch_invariant=batch_invariant, mixed_style_batches=mode)
    engine.generate(jobs)  # warm-up: first-call kernels, and the fused weights of the last style
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        results = engine.generate(jobs)
        wall_s = time.perf_counter() - started
        runs.append(
            {
                "wall_s": wall_s,
                "images_per_s": len(jobs) / wall_s,
                "latency_s": request_latencies_s(results),
                "batch_images": [r.batch_images for r in results],
                "batch_styles": [r.batch_styles for r in results],
                "unet_calls": [r.unet_calls for r in results],
                "pipeline_calls": len({_group_of(r) for r in results}),
                "adapter_swap_ms": sum(swap for swap, _, _ in {_group_of(r) for r in results}),
                "denoise_ms": sum(denoise for _, _, denoise in {_group_of(r) for r in results}),
            }
        )
    return {
        "batch_invariant": batch_invariant,
        "mixed_style_batches": mode,
        "runs": runs,
        "wall_s_median": statistics.median(r["wall_s"] for r in runs),
        "images_per_s_median": statistics.median(r["images_per_s"] for r in runs),
        "latency_s_median": [statistics.median(lat) for lat in zip(*(r["latency_s"] for r in runs))],
    }


def main() -> None:
    parser = section_parser(__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (fp16) where a GPU is")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        write_results(args.out, {"device": args.device, "skipped": "no CUDA device on this machine"})
        return
    size_px = 128 if args.quick else 256
    steps = 2 if args.quick else 4
    repeats = 1 if args.quick else 3
    full_size = ensure_full_size_weights()
    folder = full_size.sd15_fp16  # the hub's fp16 variant: bf16 on this CPU, fp16 on CUDA (dtype auto)
    results = {"device": args.device, "size_px": size_px, "steps": steps, "repeats": repeats, "quick": args.quick}
    with tempfile.TemporaryDirectory() as tmp, PeakRss() as rss:
        adapters = style_loras(Path(tmp), folder / "unet")
        settings = DiffusionSettings(folder, device=args.device, dtype="auto", adapters=adapters)
        started = time.perf_counter()
        engine = DiffusionEngine(settings)
        results["engine_load_s"] = time.perf_counter() - started
        results["dtype"] = str(engine.torch_dtype).removeprefix("torch.")
        jobs = batch(size_px, steps)
        results["configurations"] = {}
        # Interleaved rounds would spread the machine's load evenly; a configuration's runs are
        # consecutive here so its warm-up sets its fused weights, and the repeats take medians.
        for label, batch_invariant, mode in CONFIGURATIONS:
            results["configurations"][label] = run_configuration(engine, settings, jobs, batch_invariant, mode, repeats)
            write_results(args.out, {**results, "partial": True})  # a slow machine still leaves numbers
        del engine
        gc.collect()
    results["peak_rss_mib"] = rss.peak_mib
    write_results(args.out, results)


if __name__ == "__main__":
    main()
