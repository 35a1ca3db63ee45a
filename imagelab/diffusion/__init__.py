"""Stable Diffusion 1.5 core shared by the `txt2img` and `animals` archives (no server code).

Names resolve lazily, so `imagelab.diffusion.animals` or `.adjust` load without importing
diffusers (a few seconds).
"""

import importlib

_EXPORTS = {
    "ColorAdjustment": "adjust",
    "adjust_colors": "adjust",
    "AnimalClasses": "animals",
    "UnknownAnimalError": "animals",
    "normalise": "animals",
    "SCHEDULERS": "engine",
    "DiffusionEngine": "engine",
    "SCHEDULER_NAMES": "jobs",
    "DiffusionSettings": "jobs",
    "GenerationJob": "jobs",
    "GenerationResult": "jobs",
    "NonFiniteImageError": "jobs",
    "PromptTooLongError": "jobs",
    "read_lora": "lora",
    "save_lora": "lora",
    "synthesize_tiny_lora": "tiny",
    "synthesize_tiny_sd15": "tiny",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
