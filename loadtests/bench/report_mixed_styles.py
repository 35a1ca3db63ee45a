"""mixed_styles results (JSON) -> the "Mixed-style batches" section of BENCHMARKS.md and its plot:
4 requests in 4 styles as one pipeline call with per-row LoRAs, or as 4 fused groups."""


def render_mixed_styles(r: dict) -> list:
    lines = ["## Mixed-style batches (issue 19.2)", ""]
    if "skipped" in r:
        return lines + [f"Not run on {r['device']}: {r['skipped']}.", ""]
    lines += [
        f"A batch of 4 requests in 4 different styles (rank-8 LoRAs on every attention projection), full-size "
        f"SD 1.5 UNet in process on {r['device']} ({r['dtype']}), {r['size_px']} px, {r['steps']} guided DDIM steps, "
        f"fast decoder; median of {r['repeats']} runs after a warm-up. *One call*: mixed_lora.py's per-row deltas "
        "on the base weights; *four groups*: each style fused into the weights (fuse.py) and run after the other. "
        "Latency is per request from the batch's start to its images, from the engine's timings.",
        "",
        "| batch_invariant | how | images/s | wall s | per-request latency s | pipeline calls | UNet calls "
        "per call | adapter swaps ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, c in r["configurations"].items():
        first = c["runs"][0]
        latency = ", ".join(f"{s:.1f}" for s in c["latency_s_median"])
        lines.append(
            f"| {str(c['batch_invariant']).lower()} | {label} | {c['images_per_s_median']:.3f} | "
            f"{c['wall_s_median']:.1f} | {latency} | {first['pipeline_calls']} | "
            f"{max(first['unet_calls']) or '-'} | {first['adapter_swap_ms']:.0f} |"
        )
    if r.get("partial"):
        lines += ["", "*Partial run*: the configurations missing above did not finish (the machine was shared)."]
    lines += [""]
    for invariant in (False, True):
        pair = [c for c in r["configurations"].values() if c["batch_invariant"] is invariant]
        mixed = next((c for c in pair if c["mixed_style_batches"] == "on"), None)
        apart = next((c for c in pair if c["mixed_style_batches"] == "off"), None)
        if mixed and apart:
            ratio = mixed["images_per_s_median"] / apart["images_per_s_median"]
            lines.append(
                f"- batch_invariant {str(invariant).lower()}: one mixed call gives {ratio:.2f}x the throughput of "
                f"four fused groups; mean latency {sum(mixed['latency_s_median']) / 4:.1f} s against "
                f"{sum(apart['latency_s_median']) / 4:.1f} s."
            )
    lines += [
        "",
        "`mixed_style_batches: auto` mixes when batch_invariant is false and not otherwise (the decision these "
        "rows measure); CUDA (fp16) is `python -m loadtests.bench.mixed_styles --device cuda`, not run here (no GPU).",
        "",
    ]
    return lines


def mixed_styles_plots(results: dict, plt, save) -> None:
    r = results.get("mixed_styles")
    if not r or "skipped" in r:
        return
    labels = list(r["configurations"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4))
    left.barh(labels, [r["configurations"][k]["images_per_s_median"] for k in labels])
    left.set(xlabel="images/s", title=f"4 requests, 4 styles, {r['size_px']} px")
    for k in labels:
        latencies = r["configurations"][k]["latency_s_median"]
        right.plot(range(1, len(latencies) + 1), latencies, marker="o", label=k)
    right.set(xlabel="request in the batch", ylabel="latency s", title="per-request latency")
    right.legend(fontsize=7)
    save(fig, "mixed_styles")
