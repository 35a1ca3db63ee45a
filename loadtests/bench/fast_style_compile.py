"""Does `torch.compile` pay for TransformerNet as fast_style serves it (issue 16.2)? One image
per call in the served dtype and channels_last, eager against inductor with static shapes (one
graph per image size: a new size compiles again) and with dynamic shapes (one graph for every
size), interleaved in one process so the machine's load falls on all three alike. Compile
times are cold: inductor's on-disk cache points at an empty folder for the measurement."""

import os
import tempfile
import time

import torch

from imagelab.fast_style.transformer_net import TransformerNet
from loadtests.bench.measure import time_calls


def _photo(side_px: int, dtype: torch.dtype) -> torch.Tensor:
    generator = torch.Generator().manual_seed(side_px)
    x = torch.rand(1, 3, side_px, side_px, generator=generator) * 255
    return x.to(dtype=dtype, memory_format=torch.channels_last)


def _compiled(model: TransformerNet, dynamic: bool, first: torch.Tensor) -> tuple:
    """-> (compiled module, seconds of its first call: the compile)."""
    compiled = torch.compile(model, dynamic=dynamic)
    started = time.perf_counter()
    compiled(first)
    return compiled, time.perf_counter() - started


@torch.inference_mode()
def compile_vs_eager(dtype: torch.dtype, side_px: int = 512, other_px: int = 384, runs: int = 3) -> dict:
    torch.manual_seed(0)
    model = TransformerNet().eval().to(dtype=dtype, memory_format=torch.channels_last).requires_grad_(False)
    main, other = _photo(side_px, dtype), _photo(other_px, dtype)
    saved = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="inductor-cold-") as cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
        try:
            torch._dynamo.reset()
            static, static_compile_s = _compiled(model, False, main)
            dynamic, dynamic_compile_s = _compiled(model, True, main)
            started = time.perf_counter()
            static(other)  # a second size: static shapes compile a second graph
            static_new_size_s = time.perf_counter() - started
            started = time.perf_counter()
            dynamic(other)
            dynamic_new_size_s = time.perf_counter() - started
            calls = {"eager": model, "static": static, "dynamic": dynamic}
            at_side = {name: [] for name in calls}
            at_other = {"eager": [], "dynamic": []}
            for _ in range(2):  # interleaved rounds: load drifts alike over the three
                for name, fn in calls.items():
                    at_side[name].append(time_calls(lambda fn=fn: fn(main), runs).median_s)
                for name in at_other:
                    at_other[name].append(time_calls(lambda fn=calls[name]: fn(other), runs).median_s)
        finally:
            torch._dynamo.reset()
            if saved is None:
                os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
            else:
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = saved
    return {
        "dtype": str(dtype).removeprefix("torch."),
        "side_px": side_px,
        "other_px": other_px,
        "static_compile_s": static_compile_s,
        "dynamic_compile_s": dynamic_compile_s,
        "static_new_size_first_call_s": static_new_size_s,
        "dynamic_new_size_first_call_s": dynamic_new_size_s,
        "s_per_image": {name: min(samples) for name, samples in at_side.items()},
        "s_per_image_other": {name: min(samples) for name, samples in at_other.items()},
    }
