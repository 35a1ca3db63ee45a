"""The style sections of the benchmark report (loadtests/bench/style_report.py): the ratios the
targets are judged by, from a hand-made result of the fast_style and neural_style sections."""

import math

import pytest

from loadtests.bench.report import render
from loadtests.bench.style_report import fast_style_numbers, fast_style_targets, neural_style_numbers


def in_process(fp32: float, fast: float) -> dict:
    def row(images_per_s):
        return {
            "batch_size": 8,
            "runs": 2,
            "median_s": 8 / images_per_s,
            "images_per_s": images_per_s,
            "cpu_s_per_image": 2.0,
        }

    codec = {"jpeg_decode": 0.002, "tensor_conversion": 0.003, "png_encode": 0.025, "total": 0.03}
    return {
        "served_dtype": "bfloat16",
        "served_path": "bfloat16 nchw on cpu",
        "codec_s": codec,
        "fp32": {"batch8": row(fp32)},
        "served_config": {"batch8": row(fast)},
    }


def served(name: str, images_per_s: float, **extra) -> dict:
    return {
        "name": name,
        "clients": 16,
        "duration_s": 48 / images_per_s,
        "images": 48,
        "failures": 0,
        "images_per_s": images_per_s,
        "latency_s_p50": 16 / images_per_s,
        "latency_s_mean": 16 / images_per_s,
        "latency_s_max": 20 / images_per_s,
        "batch_size": 8,
        "max_batch_delay_ms": 20,
        "overrides": {},
        "environment": {},
        "cpu_s": {"clients": 0.48, "frontend": 0.96, "worker": 96.0},
        "frontend_metrics_delta": {},
        "worker_peak_rss_mib": 900.0,
        **extra,
    }


@pytest.fixture
def fast_style():
    profile = {
        "clients": 16,
        "latency_s_mean": 12.0,
        "handler_timings_ms": [{"decode": 5.0, "batch_predict": 8000.0, "stylize": 7900.0, "batch_size": 8}] * 16,
        "frontend_metrics_delta": {
            "ts_inference_requests_total": 16,
            "ts_queue_latency_microseconds": 16 * 3.5e6,
            "ts_inference_latency_microseconds": 16 * 8.2e6,
        },
    }
    return {
        "side_px": 512,
        "cores": 2,
        "shipped": {"batch_size": 8, "max_batch_delay_ms": 20},
        "matmul_peak": [
            {"dtype": "float32", "best_gflops": 200.0, "median_gflops": 180.0},
            {"dtype": "bfloat16", "best_gflops": 400.0, "median_gflops": 380.0},
        ],
        "flops_per_image": 80e9,
        "png_levels_2048": [{"level": 1, "seconds": 0.4, "bytes": 7 * 2**20}],
        "in_process_before": in_process(0.5, 1.0),
        "in_process_after": in_process(0.3, 0.8),
        "served": {"shipped": served("shipped", 0.85, profile=profile), "batch1": served("batch1", 0.6)},
    }


@pytest.fixture
def neural_style():
    step = {
        "step_s_median": 4.0,
        "step_s_best": 3.9,
        "first_step_s": 9.0,
        "transfer_total_s": 30.0,
        "peak_rss_mib": 1500.0,
    }
    return {
        "side_px": 512,
        "steps": 5,
        "content_size_px": [512, 512],
        "served_dtype": "bfloat16",
        "step_flops": 400e9,
        "matmul_peak": [
            {"dtype": "float32", "best_gflops": 200.0, "median_gflops": 180.0},
            {"dtype": "bfloat16", "best_gflops": 400.0, "median_gflops": 380.0},
        ],
        "precisions": {"float32": {**step, "step_s_median": 8.0}, "bfloat16": step},
        "default_512": {"budget_s": 240, "ceiling": 100, "steps": 46, "predicted_s": 192.0, "step_s_at_512": 4.0},
    }


def test_the_baseline_is_the_fp32_network_plus_codec_mean_of_before_and_after(fast_style):
    n = fast_style_numbers(fast_style)
    baseline = 1 / (1 / 0.4 + 0.03)  # fp32 mean (0.5 + 0.3) / 2 with 30 ms of codec per image
    assert n["baseline"] == pytest.approx(baseline)
    assert n["vs_baseline"] == pytest.approx(0.85 / baseline)
    assert n["overhead"] == pytest.approx(1 - 0.85 / (1 / (1 / 0.9 + 0.03)))
    assert n["client_cpu_per_image"] == pytest.approx(0.01)
    # CPU per image: clients + frontend + worker (97.44 s / 48) against network 2.0 s + codec 0.03 s
    assert n["cpu_overhead"] == pytest.approx(97.44 / 48 / 2.03 - 1)
    # 80 GFLOP per image at 0.9 images/s on 2 cores, against the bf16 peak
    assert n["fast_gflops_core"] == pytest.approx(36.0) and n["fast_of_peak"] == pytest.approx(0.18)


def test_the_baseline_takes_fp32_at_its_fastest_batch_and_the_served_network_as_the_handler_calls_it(fast_style):
    """fp32 is faster at batch 1 than at 8 here; the handler runs one image per call."""
    fast_style["shipped"]["images_per_call"] = 1
    for run, (fp32_1, fast_1) in zip(
        (fast_style["in_process_before"], fast_style["in_process_after"]), ((0.7, 2.0), (0.5, 1.8))
    ):
        run["fp32"]["batch1"] = {**run["fp32"]["batch8"], "images_per_s": fp32_1}
        run["served_config"]["batch1"] = {**run["served_config"]["batch8"], "images_per_s": fast_1}
    n = fast_style_numbers(fast_style)
    assert (n["fp32_batch"], n["batch"]) == ("batch1", "batch1")
    assert n["baseline"] == pytest.approx(1 / (1 / 0.6 + 0.03))
    assert n["fast_codec"] == pytest.approx(1 / (1 / 1.9 + 0.03))


def test_sustained_runs_count_the_codec_in_their_own_loop(fast_style):
    """Rows with network_images_per_s timed network and codec together: nothing is added."""
    for run in (fast_style["in_process_before"], fast_style["in_process_after"]):
        for kind, (network, total) in (("fp32", (0.5, 0.45)), ("served_config", (1.0, 0.9))):
            run[kind]["batch8"].update(network_images_per_s=network, images_per_s=total)
    n = fast_style_numbers(fast_style)
    assert n["sustained"] and (n["fp32"], n["baseline"]) == (0.5, 0.45) and n["fast_codec"] == 0.9
    assert n["overhead"] == pytest.approx(1 - 0.85 / 0.9)
    assert n["cpu_overhead"] == pytest.approx(97.44 / 48 / 2.0 - 1)  # no codec added to 2.0 s


def test_bf16_target_applies_only_with_native_bf16(fast_style):
    native = fast_style_targets({"native_bf16": True}, fast_style)
    emulated = fast_style_targets({"native_bf16": False}, fast_style)
    # 0.85 / 0.39 = 2.2x the baseline: both met
    assert native[0].endswith("| yes |") and native[1].endswith("| yes |") and emulated[1].endswith("| n/a |")
    fast_style["served"]["shipped"]["images_per_s"] = 0.3  # 0.77x
    slow = fast_style_targets({"native_bf16": True}, fast_style)
    assert slow[0].endswith("| no |") and slow[1].endswith("| no |")


def test_vgg_share_of_peak_is_against_its_own_dtype(neural_style):
    numbers = neural_style_numbers(neural_style)
    assert numbers["bfloat16"]["of_peak"] == pytest.approx(100 / 400)
    assert numbers["float32"]["of_peak"] == pytest.approx(50 / 200)


def test_render_carries_the_style_sections_and_targets(fast_style, neural_style):
    machine = {
        "date_utc": "now",
        "cpu_model": "cpu",
        "cpu_capability": "AVX512",
        "native_bf16": True,
        "usable_cpus": 2,
        "physical_cores": 2,
        "memory_gib": 24,
        "torch": "2",
        "torch_threads": 2,
        "load_average": (1.0, 1.0, 1.0),
    }
    fast_style["compile"] = {
        "dtype": "bfloat16",
        "side_px": 512,
        "other_px": 384,
        "static_compile_s": 40.0,
        "dynamic_compile_s": 50.0,
        "static_new_size_first_call_s": 30.0,
        "dynamic_new_size_first_call_s": 0.2,
        "s_per_image": {"eager": 0.3, "static": 0.25, "dynamic": 0.3},
        "s_per_image_other": {"eager": 0.15, "dynamic": 0.16},
    }
    text = render(machine, (1.0, 1.0, 1.0), {"fast_style": fast_style, "neural_style": neural_style}, {}, [], "", False)
    assert "## fast_style (512x512" in text and "## neural_style (512x512" in text
    assert "| inductor, static shapes | 0.250 (1.20x) | a graph of its own | 40.0 | 30.0 |" in text
    assert "| inductor, dynamic shapes | 0.300 (1.00x) | 0.160 (0.94x) | 50.0 | 0.2 |" in text
    assert "| frontend: in its queue" in text and "| 3500 |" in text
    assert "VGG19 step >= 50%" in text and "untruncated" in text
    assert not math.isnan(fast_style_numbers(fast_style)["fp32_of_peak"])
