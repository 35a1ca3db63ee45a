"""sd15_served results (JSON) -> the "Full-size diffusion, served" section of BENCHMARKS.md:
seconds per image by configuration (served or composed), the seed's table, the served parts,
the in-process UNet call against the matmul peak, the worker's start-up and memory, and issue
15's targets met or not."""

import math
import statistics

UNET_TARGET_GFLOPS_PER_CORE = 200.0
LCM_FAST_TARGET_S = 8.0
LCM_FULL_TARGET_S = 12.0
LCM_FULL_TARGET_UNET_CALLS = 3.0
REFUSAL_TARGET_S = 1.0
FP32_PEAK_SHARE_TARGET = 0.60
NOT_MEASURED = {b: {"flops": math.nan, "median_s": math.nan, "runs": 0} for b in ("batch1", "batch2")}


def _peak(r: dict, dtype: str) -> dict:
    return next(
        (p for p in r["matmul_peak"] if p["dtype"] == dtype), {"best_gflops": math.nan, "median_gflops": math.nan}
    )


def _config(r: dict, label: str) -> dict | None:
    return next((c for c in r.get("configurations", []) if c["label"] == label), None)


def served_numbers(r: dict) -> dict:
    """The figures the targets and the plot use, nan where the run did not measure them."""
    cores = r["cores"]
    calls = (r.get("in_process") or {}).get("calls") or NOT_MEASURED
    b1 = calls["batch1"]
    parts = r.get("parts", {})
    lcm = parts.get("animals LCM-4 full")
    # The served run that measured the guided step (results before the field: the longest dpmpp run)
    guided_from = r.get("guided_step_from") or max(
        (label for label in parts if "dpmpp" in label), key=lambda label: parts[label]["steps"], default=None
    )
    guided = parts.get(guided_from)

    def step_s(p: dict | None) -> float:
        return p["denoise_s"] / p["steps"] if p else math.nan

    refusals = [q for q in r.get("requests", []) if q["label"].startswith("over budget")]

    def seconds(label: str) -> float:
        found = _config(r, label)
        return found["seconds"] if found else math.nan

    return {
        "unet_b1_s": b1["median_s"],
        "unet_b2_s": calls["batch2"]["median_s"],
        "unet_b1_gflops_per_core": b1["flops"] / b1["median_s"] / 1e9 / cores,
        "unet_b2_gflops_per_core": calls["batch2"]["flops"] / calls["batch2"]["median_s"] / 1e9 / cores,
        "served_lcm_step_s": step_s(lcm),
        "served_lcm_gflops_per_core": b1["flops"] / step_s(lcm) / 1e9 / cores if lcm else math.nan,
        "served_guided_step_s": step_s(guided),
        "served_guided_gflops_per_core": 2 * b1["flops"] / step_s(guided) / 1e9 / cores if guided else math.nan,
        "lcm_full_s": seconds("animals LCM-4, decoder=full"),
        "lcm_fast_s": seconds("animals LCM-4, decoder=fast"),
        "refusal_statuses": [q["status"] for q in refusals],
        "refusal_median_s": statistics.median(q["wall_s"] for q in refusals) if refusals else math.nan,
        "refusal_max_s": max((q["wall_s"] for q in refusals), default=math.nan),
        "answered_504": sum(q["status"] == 504 for q in r.get("requests", [])),
        "bf16_peak_per_core": _peak(r, "bfloat16")["best_gflops"] / cores,
    }


def _f(value, digits: int = 1, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}{unit}"


def _met(ok: bool, applies: bool = True) -> str:
    return "n/a" if not applies else ("**yes**" if ok else "**no**")


def _targets(r: dict, n: dict, native_bf16: bool) -> list:
    size = r["size_px"]
    at_512 = size == 512
    three_calls = LCM_FULL_TARGET_UNET_CALLS * n["unet_b1_s"]
    statuses = n["refusal_statuses"]
    refused_ok = bool(statuses) and all(s == 422 for s in statuses) and n["refusal_max_s"] < REFUSAL_TARGET_S
    return [
        "| issue 15 target | measured in this run | met? |",
        "|---|---|---|",
        f"| native bf16: UNet call >= {UNET_TARGET_GFLOPS_PER_CORE:.0f} GFLOP/s per core (<= 1.7 s, batch 1, 512², 2 cores) "
        f"| eager bf16 channels_last: {n['unet_b1_gflops_per_core']:.0f} GFLOP/s per core, {n['unet_b1_s']:.2f} s at {size}² "
        f"(this run's bf16 matmul peak: {n['bf16_peak_per_core']:.0f} per core) | {_met(n['unet_b1_gflops_per_core'] >= UNET_TARGET_GFLOPS_PER_CORE, native_bf16)} |",
        f"| native bf16: served 512² LCM-4 animal <= {LCM_FAST_TARGET_S:.0f} s with decoder=fast "
        f"| {_f(n['lcm_fast_s'], 1, ' s')} at {size}² | {_met(n['lcm_fast_s'] <= LCM_FAST_TARGET_S, native_bf16 and at_512)} |",
        f"| native bf16: served 512² LCM-4 animal <= {LCM_FULL_TARGET_S:.0f} s with the full VAE "
        f"(<= 3x the eager bf16 UNet call: {three_calls:.1f} s here) "
        f"| {_f(n['lcm_full_s'], 1, ' s')} at {size}² ({n['lcm_full_s'] / n['unet_b1_s']:.1f}x the UNet call) "
        f"| {_met(n['lcm_full_s'] <= LCM_FULL_TARGET_S, native_bf16 and at_512)} (3x rule: {_met(n['lcm_full_s'] <= three_calls, native_bf16 and at_512)}) |",
        f"| no native bf16: fp32 UNet >= {FP32_PEAK_SHARE_TARGET:.0%} of the fp32 matmul peak "
        f"| not measured by this section (this CPU {'has' if native_bf16 else 'lacks'} native bf16; see the sd15 section) "
        f"| {_met(False, not native_bf16)} |",
        f"| an over-budget request refused in < {REFUSAL_TARGET_S:.0f} s "
        f"| statuses {statuses}; median {_f(n['refusal_median_s'], 3, ' s')}, worst {_f(n['refusal_max_s'], 3, ' s')} "
        f"| {_met(refused_ok)} |",
        f"| no admitted request answered 504 | {n['answered_504']} of {len(r.get('requests', []))} requests answered 504 "
        f"| {_met(n['answered_504'] == 0)} |",
    ]


def _load(r: dict) -> str:
    start, end = r.get("load_average_start"), r.get("load_average_end")
    if not start:
        return "not recorded"
    return f"{start[0]:.1f} at the start" + (f", {end[0]:.1f} at the end" if end else "") + " (1 min)"


def _calls(c: dict) -> str:
    if c.get("warm") is False:
        return "one cold call: includes first-call kernel set-up"
    return f"median of {c['runs']} after a warm-up"


def _served_answer(row: dict) -> str:
    answer = row.get("served_answer")
    if not answer:
        return ""
    if answer["status"] == 422:
        return f"; asked of the worker: **422 {answer.get('type')}**, its estimate {answer.get('estimated_s')} s over the {answer.get('budget_s')} s budget"
    return f"; asked of the worker: {answer['status']}"


def _seconds_table(columns: tuple, rows: list, rest) -> list:
    """A seconds-per-image table: a row per configuration or seed-table entry (both carry `label`
    and `seconds`), `columns[0]` naming the label, then seconds, then `rest(row)`: the cells after,
    under `columns[1:]`."""
    header = [columns[0], "seconds per image", *columns[1:]]
    return [
        f"| {' | '.join(header)} |",
        "|" + "---|" * len(header),
        *(f"| {row['label']} | {row['seconds']:.1f} | {rest(row)} |" for row in rows),
    ]


def render_sd15_served(r: dict, native_bf16: bool) -> list:
    n = served_numbers(r)
    size = r["size_px"]
    cores = r["cores"]
    f32, bf16 = _peak(r, "float32"), _peak(r, "bfloat16")
    calls = (r.get("in_process") or {}).get("calls") or NOT_MEASURED
    lines = [
        f"## Full-size diffusion, served ({size}x{size}, full-size SD 1.5, random weights, real TorchServe)",
        "",
        f"CPU flags: {', '.join(r['cpu_flags'])}; {cores} threads. One TorchServe on loopback serving "
        f"{', '.join(r['ready_s'])} built from a weights root whose `sd15/` is the full-size cache "
        "(`weightstore/full_size.py`; LoRAs, the LCM-LoRA and TAESD are random-weight stand-ins of the real "
        "architectures). One request at a time, `response_format=json` (the client's clock includes PNG encoding "
        f"and base64). Section wall time {r['section_s'] / 60:.1f} min; load average {_load(r)}.",
        "",
    ]
    if r.get("time_budget_s"):
        lines += [
            f"The section's archives carry a {r['time_budget_s']} s time budget instead of the shipped 540 s, so that a "
            "loaded machine's calibrated estimate does not refuse the 512 px images it exists to time; admission "
            "still runs against it (the over-budget request below).",
            "",
        ]
    if r.get("partial"):
        lines += ["**A partial run**: the section stopped after the requests listed below.", ""]
    if r.get("skipped"):
        lines += [f"Left out by the section's time limit: {', '.join(r['skipped'])}.", ""]
    lines += [
        "Seconds per image by configuration (*served*: whole images through the server, median where run more than "
        "once; *composed*: the same run's served per-step, text, adapter-swap, decode and overhead seconds added up):",
        "",
        *_seconds_table(
            ("configuration", "how", "from"), r.get("configurations", []), lambda c: f"{c['how']} | {c['from']}"
        ),
        "",
        f"The animals seed's table ({size} px):",
        "",
        *_seconds_table(
            ("steps", "how"), r.get("seed_table", []), lambda row: f"{row['how']}: {row['from']}{_served_answer(row)}"
        ),
        "",
        "Served requests, in order (seconds; `timings_ms` of the worker; overhead = client wall minus the timed stages):",
        "",
        "| request | status | wall | text | denoise | per step | decode | adapter swap | overhead |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for q in r.get("requests", []):
        t = {k: v / 1e3 for k, v in q.get("timings_ms", {}).items()}
        steps = q.get("parameters", {}).get("steps")
        if t:
            timed = t.get("text_encode", 0) + t.get("denoise", 0) + t.get("decode", 0) + t.get("adapter_swap", 0)
            cells = (
                f"{_f(t.get('text_encode'), 2)} | {_f(t.get('denoise'), 1)} | {_f(t['denoise'] / steps, 2)} "
                f"| {_f(t.get('decode'), 1)} | {_f(t.get('adapter_swap'), 2)} | {_f(max(0.0, q['wall_s'] - timed), 2)}"
            )
        else:
            error = q.get("error", {})
            cells = f"{error.get('type')}: estimate {error.get('estimated_s')} s, budget {error.get('budget_s')} s | | | | |"
        lines.append(f"| {q['label']} | {q['status']} | {q['wall_s']:.2f} | {cells} |")
    lines += [
        "",
        "Beside them, in the same run:",
        "",
        "| | |",
        "|---|---|",
        f"| matmul peak (2048² `torch.mm`), best (median), GFLOP/s | float32 {f32['best_gflops']:.0f} ({f32['median_gflops']:.0f}); "
        f"bfloat16 {bf16['best_gflops']:.0f} ({bf16['median_gflops']:.0f}) |",
    ]
    for batch in ("batch1", "batch2"):
        c = calls[batch]
        gflops = c["flops"] / c["median_s"] / 1e9
        lines.append(
            f"| in-process UNet call, eager bf16 channels_last, {batch.replace('batch', 'batch ')}, {size}² "
            f"({c['flops'] / 1e12:.3f} TFLOP) | {c['median_s']:.2f} s ({_calls(c)}); {gflops:.0f} GFLOP/s, "
            f"**{gflops / cores:.0f} per core**, {gflops / bf16['best_gflops']:.0%} of the bf16 peak |"
        )
    lines += [
        f"| served UNet step, LCM (batch 1) | {_f(n['served_lcm_step_s'], 2, ' s')}; {_f(n['served_lcm_gflops_per_core'], 0)} GFLOP/s per core |",
        f"| served UNet step, guided (batch 2) | {_f(n['served_guided_step_s'], 2, ' s')}; {_f(n['served_guided_gflops_per_core'], 0)} GFLOP/s per core |",
    ]
    for model, w in r.get("workers", {}).items():
        unet_path = (w.get("speed_at_end") or {}).get("unet_path") or {}
        path = ", ".join(f"{k}={v}" for k, v in unet_path.items() if v not in (None, "", 0)) or "eager"
        rates = (w.get("speed_at_start") or {}).get("unet_s_per_megapixel_step")
        rates_end = (w.get("speed_at_end") or {}).get("unet_s_per_megapixel_step")
        lines += [
            f"| {model} worker: start to READY (load, base-model hash check, calibration"
            f"{'; ' + ' and '.join(r['ready_s']) + ' started together' if len(r['ready_s']) > 1 else ''}) "
            f"| {r['ready_s'][model]:.0f} s |",
            f"| {model} worker: peak RSS (VmHWM, start-up included) | {w['peak_rss_mib']:,.0f} MiB |",
            f"| {model} worker: UNet s per megapixel-step, calibrated -> after the run | {rates} -> {rates_end} |",
            f"| {model} worker: UNet path (`describe` speed.unet_path) | {path} |",
        ]
    lines += ["", "The workers' own start-up lines (server log):", ""]
    lines += [f"- `{line}`" for line in r.get("log_lines", [])]
    lines += ["", "Issue 15's targets, from this run:", "", *_targets(r, n, native_bf16), ""]
    return lines


def served_plots(results: dict, plt, save) -> None:
    """Seconds per image by configuration: served bars solid, composed ones hatched; the
    worker's time budget as a line (what is past it is refused up front)."""
    if "sd15_served" not in results:
        return
    r = results["sd15_served"]
    rows = r.get("configurations", []) + [
        {**row, "label": f"seed table: {row['label']}"} for row in r.get("seed_table", [])
    ]
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(rows) + 1.4))
    labels = [row["label"] for row in rows][::-1]
    seconds = [row["seconds"] for row in rows][::-1]
    bars = ax.barh(labels, seconds, color=["tab:blue" if row["how"] == "served" else "white" for row in rows][::-1])
    for bar, row in zip(bars, rows[::-1]):
        bar.set_edgecolor("tab:blue")
        if row["how"] != "served":
            bar.set_hatch("//")
    budget_s = (r.get("workers", {}).get("animals", {}).get("speed_at_start") or {}).get("time_budget_s")
    if budget_s:
        ax.axvline(budget_s, color="tab:red", linestyle="--", label=f"time budget {budget_s} s")
        ax.legend(fontsize=7, loc="lower right")
    ax.set_xscale("log")
    ax.set_xlabel(f"seconds per image at {r['size_px']}x{r['size_px']} (solid: served; hatched: composed)")
    ax.set_title("Full-size SD 1.5 through TorchServe, this machine")
    ax.tick_params(axis="y", labelsize=7)
    save(fig, "sd15_served_seconds")
