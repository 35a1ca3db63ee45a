"""The pure parts of the mixed-styles benchmark: per-request latency from the engine's timings
and the report section."""

from imagelab.diffusion.jobs import GenerationResult
from loadtests.bench.mixed_styles import request_latencies_s
from loadtests.bench.report_mixed_styles import render_mixed_styles


def result(swap_ms, denoise_ms, total_ms):
    timings_ms = {"adapter_swap": swap_ms, "text_encode": 10.0, "denoise": denoise_ms, "total": total_ms}
    return GenerationResult([], [0], None, timings_ms, batch_images=1)


def test_groups_run_one_after_another_and_a_shared_call_ends_with_its_decodes():
    apart = [result(100.0, 1000.0, 1500.0), result(200.0, 1001.0, 1400.0)]
    assert request_latencies_s(apart) == [1.6, 1.6 + 1.6]
    together = [result(0.0, 2000.0, 2300.0), result(0.0, 2000.0, 2600.0)]
    assert request_latencies_s(together) == [2.3, 2.6]


def test_the_section_compares_one_call_with_four_groups():
    def configuration(invariant, mode, images_per_s, calls):
        run = {"pipeline_calls": calls, "unet_calls": [4] * 4 if mode == "on" else [0] * 4, "adapter_swap_ms": 5.0}
        return {"batch_invariant": invariant, "mixed_style_batches": mode, "runs": [run], "wall_s_median": 4 / images_per_s,
                "images_per_s_median": images_per_s, "latency_s_median": [1.0, 2.0, 3.0, 4.0]}  # fmt: skip

    r = {"device": "cpu", "dtype": "bfloat16", "size_px": 256, "steps": 4, "repeats": 3, "configurations": {
        "one call, mixed rows": configuration(False, "on", 0.5, 1),
        "four fused groups": configuration(False, "off", 0.25, 4)}}  # fmt: skip
    text = "\n".join(render_mixed_styles(r))
    assert "| false | one call, mixed rows | 0.500 |" in text
    assert "2.00x the throughput" in text
    assert (
        render_mixed_styles({"device": "cuda", "skipped": "no CUDA device"})[-2] == "Not run on cuda: no CUDA device."
    )
