"""What the numbers were measured on: CPU, cores, memory, torch and its threads, bf16 support."""

import datetime
import os
import platform
from pathlib import Path

import psutil
import torch

from imagelab.devices import cpu_supports_bf16


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> set:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def describe_machine() -> dict:
    flags = cpu_flags()
    return {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        # What `dtype: auto` goes by (imagelab.devices): native bf16 only, since oneDNN also
        # reports bf16 on plain AVX-512, where it emulates it with fp32 FMAs.
        "native_bf16": cpu_supports_bf16(),
        "bf16_flags": sorted(flags & {"avx512_bf16", "amx_bf16", "amx_tile"}),
        "load_average": os.getloadavg(),
    }
