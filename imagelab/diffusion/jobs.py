"""Typed inputs and outputs of the diffusion engine: settings, jobs, results, batching groups."""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple

import torch
from PIL import Image

from imagelab.devices import resolve_dtype

SCHEDULER_NAMES = ("ddim", "dpmpp", "euler_a", "lcm")
DTYPE_NAMES = ("auto", "float32", "bfloat16", "float16")
NO_STYLE = "none"
LCM_ADAPTER_NAME = "lcm"
MAX_SEED = 2**63 - 1
_ADAPTER_NAME = re.compile(r"^[a-z0-9_]+$")


@dataclass(frozen=True)
class DiffusionSettings:
    """How to load the pipeline. `adapters` maps a style name to a LoRA .safetensors file."""

    model_dir: Path
    device: str = "cpu"
    dtype: str = "auto"
    adapters: Mapping[str, Path] = field(default_factory=dict)
    lcm_adapter_path: Path | None = None
    # True: the UNet runs once per job inside a group's pipeline call, so a job's image
    # is bit-identical whatever shares its batch (CPU kernels pick different code paths
    # for different batch sizes; see engine.per_job_unet_calls). False: one UNet call for
    # the whole group, faster on GPUs, images may differ by a few 1e-6 before rounding.
    batch_invariant: bool = True

    def __post_init__(self):
        object.__setattr__(self, "model_dir", Path(self.model_dir))
        if not (self.device in ("cpu", "cuda") or re.fullmatch(r"cuda:\d+", self.device)):
            raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")
        if self.dtype not in DTYPE_NAMES:
            raise ValueError(f"dtype must be one of {DTYPE_NAMES}, got {self.dtype!r}")
        if self.dtype == "float16" and self.device == "cpu":
            raise ValueError("dtype 'float16' needs a CUDA device; on CPU use 'bfloat16' or 'float32'")
        adapters = {}
        for name, path in self.adapters.items():
            if not _ADAPTER_NAME.match(name) or name in (NO_STYLE, LCM_ADAPTER_NAME):
                raise ValueError(
                    f"adapter name {name!r} must match [a-z0-9_]+ and not be {NO_STYLE!r} or {LCM_ADAPTER_NAME!r}"
                )
            adapters[name] = Path(path)
        object.__setattr__(self, "adapters", MappingProxyType(adapters))
        if self.lcm_adapter_path is not None:
            object.__setattr__(self, "lcm_adapter_path", Path(self.lcm_adapter_path))

    @property
    def torch_dtype(self) -> torch.dtype:
        """`auto`: float16 on CUDA, bfloat16 on CPUs with native bf16, else float32 (imagelab.devices)."""
        return resolve_dtype(self.dtype, self.device)


@dataclass(frozen=True)
class GenerationJob:
    """One request. `num_images` k uses seeds seed, seed + 1, ..., seed + k - 1, one per image,
    so image i of a k-image job equals the single image of the same job with seed + i."""

    prompt: str
    negative_prompt: str = ""
    style: str = NO_STYLE
    style_scale: float = 1.0
    steps: int = 25
    guidance_scale: float = 7.5
    seed: int = 0
    width: int = 512
    height: int = 512
    num_images: int = 1
    scheduler: str = "dpmpp"

    def __post_init__(self):
        if not isinstance(self.prompt, str) or not isinstance(self.negative_prompt, str):
            raise ValueError("prompt and negative_prompt must be strings")
        if not 0.0 <= self.style_scale <= 2.0:
            raise ValueError(f"style_scale must be in [0, 2], got {self.style_scale}")
        if not 1 <= self.steps <= 150:
            raise ValueError(f"steps must be in [1, 150], got {self.steps}")
        if not 0.0 <= self.guidance_scale <= 30.0:
            raise ValueError(f"guidance_scale must be in [0, 30], got {self.guidance_scale}")
        if not 0 <= self.seed <= MAX_SEED - 16:
            raise ValueError(f"seed must be in [0, {MAX_SEED - 16}], got {self.seed}")
        for name, size_px in (("width", self.width), ("height", self.height)):
            if not (64 <= size_px <= 2048 and size_px % 8 == 0):
                raise ValueError(f"{name} must be a multiple of 8 in [64, 2048], got {size_px}")
        if not 1 <= self.num_images <= 16:
            raise ValueError(f"num_images must be in [1, 16], got {self.num_images}")
        if self.scheduler not in SCHEDULER_NAMES:
            raise ValueError(f"scheduler must be one of {SCHEDULER_NAMES}, got {self.scheduler!r}")

    @property
    def seeds(self) -> list[int]:
        return [self.seed + i for i in range(self.num_images)]

    @property
    def active_style(self) -> str:
        """The adapter actually applied: a style at scale 0 is the base model."""
        return NO_STYLE if self.style_scale == 0.0 else self.style


class GroupKey(NamedTuple):
    """What must match for jobs to share one pipeline call."""

    style: str
    style_scale: float
    steps: int
    width: int
    height: int
    scheduler: str
    guidance_scale: float


def group_key(job: GenerationJob) -> GroupKey:
    style = job.active_style
    scale = 0.0 if style == NO_STYLE else job.style_scale
    return GroupKey(style, scale, job.steps, job.width, job.height, job.scheduler, job.guidance_scale)


def group_jobs(jobs: list[GenerationJob]) -> dict[GroupKey, list[int]]:
    """Job indices per group, groups in order of their first job."""
    groups: dict[GroupKey, list[int]] = {}
    for index, job in enumerate(jobs):
        groups.setdefault(group_key(job), []).append(index)
    return groups


@dataclass
class GenerationResult:
    """The images of one job, in seed order. `nsfw` is None when the pipeline has no safety checker."""

    images: list[Image.Image]
    seeds: list[int]
    nsfw: list[bool] | None
    timings_ms: dict[str, float]
    batch_images: int  # images made by the pipeline call this job ran in
    vae_fp32_retries: int = 0


class PromptTooLongError(ValueError):
    """A prompt over the text encoder's context (77 CLIP tokens with BOS/EOS for SD 1.5)."""

    def __init__(self, field_name: str, token_count: int, max_tokens: int):
        self.field_name = field_name
        self.token_count = token_count
        self.max_tokens = max_tokens
        super().__init__(f"{field_name} has {token_count} CLIP tokens; the text encoder takes at most {max_tokens}")


class NonFiniteImageError(RuntimeError):
    """The VAE decode gave NaN/inf even in float32: the latents themselves diverged."""
