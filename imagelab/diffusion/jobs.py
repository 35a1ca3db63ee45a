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
from imagelab.validation import SEED_RANGE, InvalidValue, check_choice, check_int, check_number

SCHEDULER_NAMES = ("ddim", "dpmpp", "euler_a", "lcm")
DECODER_NAMES = ("full", "fast")  # the SD VAE, or TAESD (imagelab.diffusion.decoders)
DTYPE_NAMES = ("auto", "float32", "bfloat16", "float16")
MIXED_STYLE_MODES = ("auto", "on", "off")
NO_STYLE = "none"
LCM_ADAPTER_NAME = "lcm"

# The limits of a job, with one home: the txt2img/animals request spec
# (handlers/services/diffusion.py) reuses them, and an archive's size and image-count limits
# (DiffusionServiceSettings) must lie inside SIZE_PX_RANGE and NUM_IMAGES_RANGE.
STEPS_RANGE = (1, 100)
GUIDANCE_RANGE = (1.0, 20.0)  # 1 is unguided (LCM); diffusers guides only above 1
STYLE_SCALE_RANGE = (0.0, 2.0)
SIZE_PX_RANGE = (64, 2048)
SIZE_MULTIPLE_PX = 8  # the VAE downsamples by 8
NUM_IMAGES_RANGE = (1, 16)
_ADAPTER_NAME = re.compile(r"^[a-z0-9_]+$")


@dataclass(frozen=True)
class DiffusionSettings:
    """How to load the pipeline. `adapters` maps a style name to a LoRA .safetensors file."""

    model_dir: Path
    device: str = "cpu"
    dtype: str = "auto"
    adapters: Mapping[str, Path] = field(default_factory=dict)
    lcm_adapter_path: Path | None = None
    # True: the UNet runs once per image inside a group's pipeline call, so an image is
    # bit-identical whatever shares its batch (CPU kernels pick different code paths
    # for different batch sizes; see batching.per_span_unet_calls). False: one UNet call for
    # the whole group, faster on GPUs, images may differ by a few 1e-6 before rounding.
    batch_invariant: bool = True
    # A diffusers AutoencoderTiny folder (TAESD) for decoder="fast"; None: a random stand-in.
    fast_decoder_dir: Path | None = None
    # Fold the active LoRAs into the UNet's weights per group (imagelab.diffusion.fuse) rather
    # than running PEFT's adapter layers beside them every step.
    fuse_lora: bool = True
    # torch.compile the UNet in a background thread and switch over when built (fast_path.py).
    compile_unet: bool = False
    # Jobs that differ only in style and style scale share one pipeline call, each UNet row
    # with its own LoRAs (mixed_lora.py). auto: when batch_invariant is false (one UNet call
    # for the group). With batch_invariant the UNet runs per image anyway, so mixing saves
    # only adapter swaps and per-call overhead against the unfused LoRA cost every step; auto
    # keeps the fused per-style groups there until loadtests/bench/mixed_styles.py shows
    # otherwise (not yet measured on a quiet machine). on/off force it.
    mixed_style_batches: str = "auto"

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
        if self.mixed_style_batches not in MIXED_STYLE_MODES:
            raise ValueError(
                f"mixed_style_batches must be one of {MIXED_STYLE_MODES}, got {self.mixed_style_batches!r}"
            )

    @property
    def mixes_styles(self) -> bool:
        """Whether jobs differing only in style share a pipeline call (mixed_style_batches)."""
        if self.mixed_style_batches == "auto":
            return not self.batch_invariant
        return self.mixed_style_batches == "on"

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
    decoder: str = "full"

    def __post_init__(self):
        for name in ("prompt", "negative_prompt"):
            if not isinstance(getattr(self, name), str):
                raise InvalidValue(name, f"{name} must be a string")
        check_number("style_scale", self.style_scale, *STYLE_SCALE_RANGE)
        check_int("steps", self.steps, *STEPS_RANGE)
        check_number("guidance_scale", self.guidance_scale, *GUIDANCE_RANGE)
        check_int("seed", self.seed, *SEED_RANGE)
        for name in ("width", "height"):
            check_int(name, getattr(self, name), *SIZE_PX_RANGE, multiple_of=SIZE_MULTIPLE_PX)
        check_int("num_images", self.num_images, *NUM_IMAGES_RANGE)
        check_choice("scheduler", self.scheduler, SCHEDULER_NAMES)
        check_choice("decoder", self.decoder, DECODER_NAMES)

    @property
    def seeds(self) -> list[int]:
        return [self.seed + i for i in range(self.num_images)]

    @property
    def active_style(self) -> str:
        """The adapter actually applied: a style at scale 0 is the base model."""
        return NO_STYLE if self.style_scale == 0.0 else self.style


class GroupKey(NamedTuple):
    """What must match for jobs to share one pipeline call. In mixed-style batches style is
    ANY_STYLE and style_scale 0: each job brings its own (mixed_lora.py)."""

    style: str
    style_scale: float
    steps: int
    width: int
    height: int
    scheduler: str
    guidance_scale: float
    decoder: str = "full"


ANY_STYLE = "*"  # GroupKey.style of a group whose jobs may differ in style


def group_key(job: GenerationJob, mix_styles: bool = False) -> GroupKey:
    style = ANY_STYLE if mix_styles else job.active_style
    scale = 0.0 if style in (NO_STYLE, ANY_STYLE) else job.style_scale
    return GroupKey(style, scale, job.steps, job.width, job.height, job.scheduler, job.guidance_scale, job.decoder)


def group_jobs(jobs: list[GenerationJob], mix_styles: bool = False) -> dict[GroupKey, list[int]]:
    """Job indices per group, groups in order of their first job; with `mix_styles`, jobs
    that differ only in style and style scale share a group."""
    groups: dict[GroupKey, list[int]] = {}
    for index, job in enumerate(jobs):
        groups.setdefault(group_key(job, mix_styles), []).append(index)
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
    # Mixed-style calls only (mixed_lora.py): the distinct styles (adapter sets) among the
    # call's images and the UNet forward calls it made; 0 when the call had one style.
    batch_styles: int = 0
    unet_calls: int = 0


class PromptTooLongError(InvalidValue):
    """A prompt over the text encoder's context (77 CLIP tokens with BOS/EOS for SD 1.5)."""

    def __init__(self, field_name: str, token_count: int, max_tokens: int):
        self.token_count = token_count
        self.max_tokens = max_tokens
        super().__init__(
            field_name, f"{field_name} has {token_count} CLIP tokens; the text encoder takes at most {max_tokens}"
        )


class NonFiniteImageError(RuntimeError):
    """The VAE decode gave NaN/inf even in float32: the latents themselves diverged."""
