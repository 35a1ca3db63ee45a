"""loadtests/bench/sd15_served.py and its report: the composition arithmetic (a served image's
seconds from its measured parts), which figures are served and which composed, and the rendered
section and targets. The numbers are made up; no timing is asserted."""

import math

import pytest

from loadtests.bench import sd15_served as bench
from loadtests.bench.report_sd15_served import render_sd15_served, served_numbers, served_plots


def response(label: str, steps: int, wall_s: float, **timings_ms) -> dict:
    return {
        "label": label,
        "model": "animals",
        "status": 200,
        "wall_s": wall_s,
        "timings_ms": timings_ms,
        "parameters": {"steps": steps},
    }


class FakeRecorder(bench.Recorder):
    """The recorder's bookkeeping without a server: requests as the worker would answer them."""

    def __init__(self, requests: list):
        self.requests, self.skipped, self.size_px = requests, [], 512


def test_served_parts_read_timings_ms_and_split_off_the_overhead():
    parts = bench.ServedParts.from_response(
        4, 30.0, {"text_encode": 500.0, "denoise": 20000.0, "decode": 6000.0, "adapter_swap": 1500.0, "total": 28000}
    )
    assert (parts.text_s, parts.denoise_s, parts.decode_s, parts.swap_s) == (0.5, 20.0, 6.0, 1.5)
    assert parts.step_s == 5.0
    assert parts.overhead_s == pytest.approx(2.0)  # 30 - (0.5 + 20 + 6 + 1.5)


def test_overhead_is_never_negative():
    assert bench.ServedParts(1, 1.0, 0.5, 1.0, 0.5, 0.0).overhead_s == 0.0


def test_composition_adds_text_steps_decode_swap_and_overhead():
    assert bench.compose_s(25, 2.0, 0.5, 6.0, 1.0, 0.25) == pytest.approx(0.5 + 50.0 + 6.0 + 0.25 + 1.0)
    assert bench.compose_s(0, 2.0, 0.5, 6.0, 1.0) == pytest.approx(7.5)


def test_median_parts_take_each_stage_median():
    runs = [bench.ServedParts(4, w, t, d, c, 0.0) for w, t, d, c in ((10, 1, 4, 3), (30, 3, 12, 9), (20, 2, 8, 6))]
    assert bench.median_parts(runs) == bench.ServedParts(4, 20, 2, 8, 6, 0.0)


def test_gflops_per_core():
    assert bench.gflops_per_core(677e9, 1.7, 2) == pytest.approx(199.1, abs=0.1)


def run_requests(with_default: bool) -> list:
    requests = [
        response(bench.LCM_FAST_FIRST, 4, 40.0, text_encode=1000, denoise=24000, decode=2000, adapter_swap=10000),
        response(bench.LCM_FULL, 4, 40.0, text_encode=1000, denoise=24000, decode=14000),  # overhead 1 s
        response(bench.LCM_FAST, 4, 28.0, text_encode=1000, denoise=24000, decode=2000),  # overhead 1 s
        response(bench.MONET_FAST, 2, 27.0, text_encode=1000, denoise=20000, decode=2000, adapter_swap=3000),
    ]
    if with_default:
        requests.append(response(bench.DEFAULT_FULL, 25, 270.0, text_encode=1000, denoise=250000, decode=14000))
    else:
        requests.append(
            {
                "label": bench.DEFAULT_FULL,
                "model": "txt2img",
                "status": 422,
                "wall_s": 0.05,
                "error": {"type": "TooExpensive", "estimated_s": 700.0, "budget_s": 540},
            }
        )
    requests += [
        {"label": "over budget (100 steps, 1024 px)", "status": 422, "wall_s": w, "error": {"type": "TooExpensive"}}
        for w in (0.05, 0.2, 0.1)
    ]
    return requests


def by_label(rows: list) -> dict:
    return {row["label"]: row for row in rows}


def test_the_default_request_refused_is_composed_from_the_guided_step_and_each_decoder():
    rows = by_label(bench.configurations(FakeRecorder(run_requests(with_default=False))))
    assert rows["animals LCM-4, decoder=full"] == {
        **rows["animals LCM-4, decoder=full"],
        "seconds": 40.0,
        "how": "served",
    }
    assert rows["animals LCM-4, decoder=fast"]["seconds"] == 28.0  # the warm run, not the first
    none_full = rows["txt2img 25 dpmpp 7.5, style none, decoder=full"]
    # monet run: 10 s per guided step, text 1 s, swap 3 s; full decode 14 s and overhead 1 s
    assert none_full["how"] == "composed" and none_full["seconds"] == pytest.approx(1 + 250 + 3 + 14 + 1)
    monet_fast = rows["txt2img 25 dpmpp 7.5, style monet, decoder=fast"]
    assert monet_fast["seconds"] == pytest.approx(1 + 250 + 3 + 2 + 1)


def test_a_served_default_request_is_reported_as_served_and_supplies_the_guided_step():
    rows = by_label(bench.configurations(FakeRecorder(run_requests(with_default=True))))
    assert rows["txt2img 25 dpmpp 7.5, style none, decoder=full"]["how"] == "served"
    assert rows["txt2img 25 dpmpp 7.5, style none, decoder=full"]["seconds"] == 270.0
    assert rows["txt2img 25 dpmpp 7.5, style none, decoder=fast"]["seconds"] == pytest.approx(1 + 250 + 2 + 1)


def test_the_seed_table_composes_20_and_100_guided_steps_and_serves_lcm():
    rows = bench.seed_table(FakeRecorder(run_requests(with_default=False)))
    assert [r["label"] for r in rows] == [
        "dpmpp 20 steps, guidance 7.5",
        "dpmpp 100 steps, guidance 7.5",
        "LCM 4 steps, guidance 1 (the CPU default)",
    ]
    assert rows[0]["seconds"] == pytest.approx(1 + 200 + 3 + 14 + 1)
    assert rows[1]["seconds"] == pytest.approx(1 + 1000 + 3 + 14 + 1)
    assert [r["how"] for r in rows] == ["composed", "composed", "served"]


def results(requests: list, native: bool = True) -> dict:
    recorder = FakeRecorder(requests)
    seed = bench.seed_table(recorder)
    seed[1]["served_answer"] = {"status": 422, "type": "TooExpensive", "estimated_s": 1100.0, "budget_s": 540}
    labels = dict.fromkeys(r["label"] for r in requests)
    return {
        "size_px": 512,
        "cores": 2,
        "cpu_flags": ["avx512f", "avx512_bf16"],
        "matmul_peak": [
            {"dtype": "float32", "best_gflops": 120.0, "median_gflops": 100.0},
            {"dtype": "bfloat16", "best_gflops": 240.0, "median_gflops": 200.0},
        ],
        "in_process": {
            "calls": {
                "batch1": {"flops": 677e9, "median_s": 6.77, "runs": 1},
                "batch2": {"flops": 1354e9, "median_s": 13.0, "runs": 1},
            }
        },
        "ready_s": {"animals": 120.0, "txt2img": 130.0},
        "configurations": bench.configurations(recorder),
        "seed_table": seed,
        "guided_step_from": bench.guided_parts(recorder)[1],
        "requests": requests,
        "parts": {label: vars(recorder.parts(label)) for label in labels if recorder.parts(label)},
        "workers": {
            "animals": {
                "peak_rss_mib": 6000.0,
                "speed_at_start": {"time_budget_s": 540, "unet_s_per_megapixel_step": 20.0},
                "speed_at_end": {
                    "unet_s_per_megapixel_step": 22.0,
                    "unet_path": {"dtype": "bfloat16", "compile": "off"},
                },
            }
        },
        "log_lines": ["speed at 256 px: unet 1.0 s"],
        "section_s": 900.0,
    }


def test_served_numbers_give_gflops_per_core_and_refusal_latency():
    n = served_numbers(results(run_requests(with_default=False)))
    assert n["unet_b1_gflops_per_core"] == pytest.approx(50.0)
    assert n["served_lcm_step_s"] == 6.0
    assert n["served_guided_step_s"] == 10.0  # the monet run: the default request was refused
    assert n["served_guided_gflops_per_core"] == pytest.approx(2 * 677 / 10 / 2)
    assert n["refusal_median_s"] == 0.1 and n["refusal_max_s"] == 0.2
    assert n["refusal_statuses"] == [422, 422, 422]
    assert n["answered_504"] == 0


def test_the_rendered_section_labels_composed_figures_and_states_each_target():
    text = "\n".join(render_sd15_served(results(run_requests(with_default=False)), native_bf16=True))
    assert text.startswith("## Full-size diffusion, served")
    assert "| txt2img 25 dpmpp 7.5, style none, decoder=full | 269.0 | composed |" in text
    assert "| animals LCM-4, decoder=full | 40.0 | served |" in text
    assert "**422 TooExpensive**" in text  # the seed's 100 steps, asked of the worker
    assert "50 per core" in text
    targets = text[text.index("| issue 15 target |") :]
    assert targets.count("**no**") == 4  # 50 GFLOP/s per core, 28 s fast, 40 s full and its 3x rule
    assert targets.count("**yes**") == 2  # refusals under 1 s, no 504
    assert "| n/a |" in targets  # the fp32 target: this CPU has bf16


def test_a_504_or_a_slow_refusal_fails_those_targets():
    requests = run_requests(with_default=False)
    requests[-1] = {**requests[-1], "wall_s": 1.5}
    requests.append({"label": "x", "status": 504, "wall_s": 540.0, "error": {"type": "DeadlineExceeded"}})
    n = served_numbers(results(requests))
    text = "\n".join(render_sd15_served(results(requests), native_bf16=False))
    assert n["answered_504"] == 1
    targets = text[text.index("| issue 15 target |") :]
    assert targets.count("**yes**") == 0
    assert not math.isnan(n["refusal_max_s"])


def test_the_plot_draws_every_configuration(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    saved = []

    def save(fig, name):
        saved.append((name, len(fig.axes[0].patches)))
        plt.close(fig)

    r = results(run_requests(with_default=False))
    served_plots({"sd15_served": r}, plt, save)
    assert saved == [("sd15_served_seconds", len(r["configurations"]) + len(r["seed_table"]))]


def test_a_partial_run_without_the_in_process_call_still_renders():
    r = {**results(run_requests(with_default=False)), "partial": True, "in_process": None}
    text = "\n".join(render_sd15_served(r, native_bf16=True))
    assert "**A partial run**" in text
    assert "| animals LCM-4, decoder=full | 40.0 | served |" in text


def test_without_a_guided_run_the_guided_step_is_twice_the_lcm_step_and_says_so():
    requests = [r for r in run_requests(with_default=False) if r["label"] != bench.MONET_FAST]
    rows = bench.seed_table(FakeRecorder(requests))
    # LCM full: 6 s per step (batch 1) -> 12 s guided; text 1 s, decode 14 s, overhead 1 s
    assert rows[0]["seconds"] == pytest.approx(1 + 20 * 12 + 14 + 1)
    assert "x 2 (batch 2 vs 1)" in rows[0]["from"]
