"""Section results (JSON) -> BENCHMARKS.md: the targets with their gaps first, then each
capability's numbers, each marked measured or extrapolated."""

import math

from loadtests.bench.report_mixed_styles import render_mixed_styles
from loadtests.bench.report_sd15_served import render_sd15_served
from loadtests.bench.style_report import (
    fast_style_section,
    fast_style_targets,
    neural_style_section,
    neural_style_targets,
)
from loadtests.bench.style_report import peak_gflops as _peak

ANIMALS_TARGET_S = 25.0
BF16_PEAK_TARGET = 0.70


def _f(value, digits: int = 2, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}{unit}"


def sd_numbers(r: dict, dtype: str) -> dict:
    """Missing parts (bf16 measures only the guided step by default) come out as nan."""
    d = r[dtype]

    def median(key: str) -> float:
        return d[key]["median_s"] if key in d else math.nan

    flops = d["guided_step_flops"]
    guided_s, unguided_s = median("guided_step"), median("unguided_step")
    text_s, decode_s = median("text_encode_batch2"), median("vae_decode")
    gflops = flops / guided_s / 1e9
    return {
        "guided_s": guided_s,
        "unguided_s": unguided_s,
        "text_s": text_s,
        "decode_s": decode_s,
        "gflops": gflops,
        "of_peak": gflops / _peak(r, dtype),
        "peak": _peak(r, dtype),
        "lcm4": text_s + 4 * unguided_s + decode_s,
        "guided20": text_s + 20 * guided_s + decode_s,
        "lcm4_measured": d.get("lcm_4_steps_measured_s"),
        "rss": d["peak_rss_mib"],
    }


def _targets(machine: dict, results: dict) -> list:
    lines = ["| target | measured here | gap | met? |", "|---|---|---|---|"]
    if "fast_style" in results:
        lines += fast_style_targets(machine, results["fast_style"])
    if "neural_style" in results:
        lines += neural_style_targets(results["neural_style"])
    if "sd15" in results:
        b = sd_numbers(results["sd15"], "bfloat16")
        native = machine.get("native_bf16")
        note = "" if native else " (this CPU has no native bf16: target does not apply, shown for reference)"
        lines.append(
            f"| guided SD 1.5 step >= 70 % of the bf16 matmul peak, on CPUs with bf16{note} "
            f"| {b['of_peak']:.0%} ({b['gflops']:.0f} of {b['peak']:.0f} GFLOP/s) "
            f"| {max(0.0, BF16_PEAK_TARGET - b['of_peak']):.0%} points short "
            f"| {'n/a' if not native else ('yes' if b['of_peak'] >= BF16_PEAK_TARGET else 'no')} |"
        )
        n = sd_numbers(results["sd15"], "float32")
        value, how = (
            (n["lcm4_measured"], "measured") if n["lcm4_measured"] else (n["lcm4"], "extrapolated from measured parts")
        )
        cores = machine.get("usable_cpus")
        size = results["sd15"]["size_px"]
        lines.append(
            f"| animals 512x512 image, LCM 4 steps, <= 25 s on a 2-core CPU "
            f"| {value:.1f} s at {size}x{size} ({how}, float32, {cores} cores) | {value / ANIMALS_TARGET_S:.1f}x the target "
            f"| {'yes' if value <= ANIMALS_TARGET_S else 'no'} |"
        )
    return lines


def _sd15(r: dict) -> list:
    size = r["size_px"]
    lines = [
        f"## Stable Diffusion 1.5 ({size}x{size}, full-size architecture, random weights)",
        "",
        f"UNet {r['unet_parameters'] / 1e6:.0f} M parameters; one guided step (batch 2 for classifier-free guidance) is "
        f"{r['float32']['guided_step_flops'] / 1e12:.2f} TFLOP (FlopCounterMode; matmuls, convolutions and "
        "attention). Matmul peak: 2048x2048 `torch.mm`, best of repeated runs, in the same process.",
        "",
        "| | float32 | bfloat16 |",
        "|---|---|---|",
    ]
    f, b = sd_numbers(r, "float32"), sd_numbers(r, "bfloat16")
    rows = [
        ("guided UNet step (batch 2), s", "guided_s", 2, ""),
        ("achieved GFLOP/s in the guided step", "gflops", 0, ""),
        ("unguided UNet step (batch 1, LCM), s", "unguided_s", 2, ""),
        ("text encoder (batch 2), s", "text_s", 2, ""),
        (f"VAE decode ({size}x{size}), s", "decode_s", 2, ""),
        ("peak RSS of the process, MiB", "rss", 0, ""),
    ]
    lines.append(
        f"| matmul peak, GFLOP/s: best (median) | {_peak(r, 'float32'):.0f} ({_peak(r, 'float32', 'median_gflops'):.0f}) "
        f"| {_peak(r, 'bfloat16'):.0f} ({_peak(r, 'bfloat16', 'median_gflops'):.0f}) |"
    )
    for label, key, digits, unit in rows:
        lines.append(f"| {label} | {_f(f[key], digits, unit)} | {_f(b[key], digits, unit)} |")
    lines.append(f"| guided step, share of the matmul peak | {f['of_peak']:.0%} | {b['of_peak']:.0%} |")
    if math.isnan(b["unguided_s"]):
        lines += [
            "",
            "bfloat16: only the guided step was measured (`--all-bf16` measures every part); n/a marks what was not.",
        ]
    lines += [
        "",
        "End to end, one image (text encoding + steps + VAE decode; scheduler and PNG encoding are negligible):",
        "",
        "| | float32 | bfloat16 | how |",
        "|---|---|---|---|",
    ]
    measured = f["lcm4_measured"]
    lines.append(
        f"| LCM, 4 steps, guidance 1 | {_f(f['lcm4'], 1, ' s')} | {_f(b['lcm4'], 1, ' s')} | extrapolated: text + 4 x unguided step + decode |"
    )
    if measured:
        lines.append(
            f"| LCM, 4 steps, guidance 1 | {measured:.1f} s | - | **measured**: one full run with LCMScheduler |"
        )
    lines.append(
        f"| DPM-Solver++, 20 steps, guidance 7.5 | {_f(f['guided20'], 1, ' s')} | {_f(b['guided20'], 1, ' s')} | extrapolated: text + 20 x guided step + decode |"
    )
    lines += [
        "",
        "Per-step, text-encoder and decode times are measured (medians); the 4- and 20-step totals above are "
        "sums of those measurements, not runs, unless marked measured. LoRA adapters (unfused PEFT layers "
        "in serving) add a little to each step and are not included.",
        "",
    ]
    return lines


def _memory(results: dict) -> list:
    lines = ["## Peak memory per worker", "", "| capability | peak RSS | how |", "|---|---|---|"]
    if "fast_style" in results:
        r = results["fast_style"]
        lines.append(
            f"| fast_style | {r['served']['shipped']['worker_peak_rss_mib']:.0f} MiB | TorchServe worker while saturated at 512 px, shipped archive (4 full-size styles loaded) |"
        )
    if "neural_style" in results:
        r = results["neural_style"]
        lines.append(
            f"| neural_style | {max(p['peak_rss_mib'] for p in r['precisions'].values()):.0f} MiB | in-process, full-size VGG19 at {r['side_px']} px |"
        )
    if "sd15" in results:
        r = results["sd15"]
        for dtype in ("float32", "bfloat16"):
            lines.append(
                f"| txt2img / animals ({dtype}) | {r[dtype]['peak_rss_mib']:.0f} MiB | in-process, full-size SD 1.5 at {r['size_px']} px (no LoRA adapters loaded) |"
            )
    if "locust_sweep" in results:
        for model, c in results["locust_sweep"]["capabilities"].items():
            weights = (
                ("synthetic full-size TransformerNets" if model == "fast_style" else "tiny offline weights")
                if c.get("tiny_weights")
                else "weights/ as served"
            )
            lines.append(
                f"| {model} | {c['worker_peak_rss_mib']:.0f} MiB | TorchServe worker during the locust sweep ({weights}) |"
            )
    return lines + [""]


def _locust(r: dict) -> list:
    tiny = [m for m, c in r["capabilities"].items() if c.get("tiny_weights") and m != "fast_style"]
    p = r["profile"]
    lines = [
        "## Locust (served, one capability at a time, no think time)",
        "",
        f"{r['duration_s']} s per point after a warm-up. Requests: fast_style {p['LOADTEST_FAST_SIDES_PX']} px photos "
        f"(full-size network: its synthetic weights have the real architecture); neural_style {p['LOADTEST_NEURAL_SIDE_PX']} px, "
        f"{p['LOADTEST_NEURAL_STEPS']} steps; txt2img and animals {p['LOADTEST_DIFFUSION_SIZES_PX']} px, "
        f"{p['LOADTEST_DIFFUSION_STEPS']} steps. "
        + (
            f"{', '.join(tiny)} served on the **tiny offline weights**: full-size SD 1.5 serving is minutes per image "
            "on this CPU, so those rows measure the serving path, not model cost."
            if tiny
            else ""
        ),
        "",
        "| capability | users | requests/s | p50 ms | p95 ms | requests | failures |",
        "|---|---|---|---|---|---|---|",
    ]
    for model, c in r["capabilities"].items():
        for run in c["runs"]:
            lines.append(
                f"| {model} | {run['users']} | {_f(run.get('requests_per_s'))} | {_f(run.get('p50_ms'), 0)} "
                f"| {_f(run.get('p95_ms'), 0)} | {run['requests']} | {run['failures']} |"
            )
    failures = sum(run["failures"] for c in r["capabilities"].values() for run in c["runs"])
    lines += ["", f"Failures in the sweep: **{failures}**.", ""]
    return lines


def _oip_front(r: dict) -> list:
    lat, add = r["latency"], r["added"]
    labels = {
        "direct_http": "TorchServe direct (plain HTTP POST of the same v2 body to `/predictions/fast_style`)",
        "front_http": "through the front, `tritonclient.http`",
        "front_grpc": "through the front, `tritonclient.grpc`",
    }
    lines = [
        f"## Open Inference Protocol front: added latency ({r['model']}, {r['side_px']}x{r['side_px']}, one request at a time)",
        "",
        "| way | requests | median ms | p90 ms | added median ms | added p90 ms | median ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for way, s in lat.items():
        a = add.get(way)
        extra = f"{a['median_ms']:+.1f} | {a['p90_ms']:+.1f} | {a['ratio']:.2f}x" if a else "- | - | -"
        lines.append(
            f"| {labels.get(way, way)} | {s['requests']} | {s['median_ms']:.1f} | {s['p90_ms']:.1f} | {extra} |"
        )
    lines += [
        "",
        f"{r['rounds']} rounds after a warm-up; each round sends one request every way, in an order rotated per "
        "round (ABC, BCA, CAB), so the shared machine's load falls on every way alike. The direct way posts the "
        "byte-identical body tritonclient.http sends the front (binary tensor extension), to the path the front "
        "forwards it to; added = through the front minus direct. Client, front and TorchServe share the same cores.",
        "",
    ]
    return lines


def render(
    machine: dict, load_end: tuple, results: dict, errors: dict, plots: list, plot_note: str, quick: bool
) -> str:
    m = machine
    start = ", ".join(f"{x:.2f}" for x in m["load_average"])
    end = ", ".join(f"{x:.2f}" for x in load_end)
    lines = [
        "# Benchmarks",
        "",
        f"Written by `make bench`{' --quick (a sanity run: smaller sizes, single runs; not comparable)' if quick else ''} "
        f"on {m['date_utc']}. Rerun with `make bench`; `make bench BENCH_ARGS=--quick` for a fast sanity run.",
        "",
        "| machine | |",
        "|---|---|",
        f"| CPU | {m['cpu_model']} ({m['cpu_capability']}; native bf16 (AVX512-BF16/AMX), which `dtype: auto` "
        f"goes by: {'yes' if m['native_bf16'] else 'no'}) |",
        f"| cores | {m['usable_cpus']} usable, {m['physical_cores']} physical |",
        f"| memory | {m['memory_gib']} GiB |",
        f"| torch | {m['torch']}, {m['torch_threads']} threads (each TorchServe worker: cores / workers) |",
        f"| load average (1, 5, 15 min) | start {start}; end {end} |",
        "",
        f"The machine was shared with other jobs while this ran (load average above; {m['usable_cpus']} cores), so every "
        "number is noisy and probably pessimistic.",
        "",
        "## Targets",
        "",
        *_targets(machine, results),
        "",
    ]
    if "fast_style" in results:
        lines += fast_style_section(results["fast_style"])
    if "sd15" in results:
        lines += _sd15(results["sd15"])
    if "sd15_served" in results:
        lines += render_sd15_served(results["sd15_served"], bool(machine.get("native_bf16")))
    if "neural_style" in results:
        lines += neural_style_section(results["neural_style"])
    lines += _memory(results)
    if "locust_sweep" in results:
        lines += _locust(results["locust_sweep"])
    if "oip_front" in results:
        lines += _oip_front(results["oip_front"])
    if "mixed_styles" in results:
        lines += render_mixed_styles(results["mixed_styles"])
    lines += [
        "## Measured and extrapolated",
        "",
        "Measured in this run: every throughput, step, encode and decode time, matmul peak, FLOP count (counted, "
        "not timed), RSS and locust figure above, and the LCM 4-step image where a row says *measured*. "
        "Extrapolated: the end-to-end rows marked so, which add measured per-step times to measured text-encoder "
        "and decoder times. Single runs (VAE decode, the bf16 step, the measured LCM image) include first-call "
        "set-up and are the least certain.",
        "",
        "## Plots",
        "",
    ]
    lines += [f"![{p.stem}]({p})" for p in plots] or [plot_note]
    if errors:
        lines += ["", "## Sections that failed", ""] + [f"- {name}: {message}" for name, message in errors.items()]
    return "\n".join(lines) + "\n"
