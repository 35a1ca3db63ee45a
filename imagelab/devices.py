"""Device, dtype and thread choices shared by serving and training."""

import os
from typing import Optional

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(gpu_id: Optional[int]) -> str:
    """TorchServe passes gpu_id when deviceType is gpu and a GPU exists; CPU otherwise."""
    if gpu_id is not None and torch.cuda.is_available():
        return f"cuda:{int(gpu_id)}"
    return "cpu"


def cpu_supports_bf16() -> bool:
    """Native bf16 matmul (AVX512-BF16 or AMX-BF16). oneDNN also reports bf16 "support" on plain
    AVX-512, where it emulates it and runs SD 1.5 4-5x slower than fp32 (BENCHMARKS.md)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = next((line.split(":", 1)[1].split() for line in cpuinfo if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_dtype(name: str, device: str) -> torch.dtype:
    """'auto' is fp16 on CUDA, bf16 on CPUs with native bf16, else fp32."""
    if name == "auto":
        if device.startswith("cuda"):
            return torch.float16
        return torch.bfloat16 if cpu_supports_bf16() else torch.float32
    if name not in DTYPES:
        raise ValueError(f"dtype must be auto or one of {', '.join(DTYPES)}; got {name!r}")
    return DTYPES[name]


def threads_per_worker(workers: int, cores: Optional[int] = None) -> int:
    """Split the cores between the workers so that workers x threads never exceeds them;
    oversubscribed OpenMP threads spin against each other and every worker slows down."""
    cores = cores or len(os.sched_getaffinity(0))
    return max(1, cores // max(1, workers))


def configure_threads(threads: int) -> None:
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
