"""PNG plots of the benchmark results, when matplotlib is installed (it is not pinned in
requirements.txt; without it the report says so and carries the same numbers in its tables)."""

from pathlib import Path

from loadtests.bench.report import sd_numbers
from loadtests.bench.report_mixed_styles import mixed_styles_plots
from loadtests.bench.report_sd15_served import served_plots
from loadtests.bench.style_report import style_plots


def write_plots(results: dict, out_dir: Path) -> tuple:
    """-> (written PNG paths, a note for the report when none could be written)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return [], "matplotlib is not installed, so no plots were drawn; the tables above hold every number."
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []

    def save(fig, name: str) -> None:
        path = out_dir / f"{name}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    style_plots(results, plt, save)  # fast_style and neural_style (style_report.py)
    if "sd15" in results:
        r = results["sd15"]
        fig, ax = plt.subplots(figsize=(6, 3))
        dtypes = ["float32", "bfloat16"]
        achieved = [sd_numbers(r, d)["gflops"] for d in dtypes]
        peaks = [sd_numbers(r, d)["peak"] for d in dtypes]
        xs = range(len(dtypes))
        ax.bar([x - 0.2 for x in xs], peaks, width=0.4, label="matmul peak")
        ax.bar([x + 0.2 for x in xs], achieved, width=0.4, label="guided UNet step")
        ax.set_xticks(list(xs), dtypes)
        ax.set_ylabel("GFLOP/s")
        ax.set_title("SD 1.5 UNet vs the matmul peak")
        ax.legend()
        save(fig, "sd15_gflops")
    served_plots(results, plt, save)  # sd15_served (report_sd15_served.py)
    if "locust_sweep" in results:
        fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
        for model, c in results["locust_sweep"]["capabilities"].items():
            users = [run["users"] for run in c["runs"]]
            left.plot(users, [run.get("requests_per_s", 0) for run in c["runs"]], marker="o", label=model)
            right.plot(users, [run.get("p95_ms", 0) for run in c["runs"]], marker="o", label=model)
        left.set(xlabel="users", ylabel="requests/s", xscale="log", title="throughput")
        right.set(xlabel="users", ylabel="p95 ms", xscale="log", yscale="log", title="p95 latency")
        left.legend(fontsize=7)
        save(fig, "locust_sweep")
    if "oip_front" in results:
        samples = results["oip_front"]["samples_ms"]
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.boxplot(list(samples.values()), tick_labels=list(samples), vert=False, whis=(10, 90), showfliers=False)
        ax.set_xlabel("ms per request (whiskers: p10, p90)")
        ax.set_title("fast_style: TorchServe direct vs through the v2 front")
        save(fig, "oip_front_latency")
    mixed_styles_plots(results, plt, save)  # mixed_styles (report_mixed_styles.py)
    return written, ""
