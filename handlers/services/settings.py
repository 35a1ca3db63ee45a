"""The archive -> handler contract: one typed, frozen settings class per capability.

The archiver's plan builds one of these (archiver/capabilities.py), `to_config` writes it into
the archive's model-config.yaml `handler:` section, and the worker reads it back with
`from_config`. No TorchServe import here, so both sides and the unit tests share it."""

import json
from dataclasses import asdict, dataclass, field
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Optional

from handlers.common.images import ImageLimits
from imagelab.devices import DTYPES
from imagelab.diffusion.jobs import NUM_IMAGES_RANGE, SIZE_PX_RANGE
from imagelab.neural_style.config import MAX_SIDE_PX_RANGE, STEPS_RANGE

# Read by the server adapter, not by the services.
ADAPTER_SETTINGS = {"threads_per_worker", "fault_injection"}


def from_settings(cls, settings: dict):
    """Build a frozen settings dataclass from a YAML mapping; unknown keys are config errors.
    YAML has no tuples: a list given for a tuple field becomes a tuple again."""
    fields = {f.name: f for f in dataclass_fields(cls)}
    unknown = sorted(set(settings) - set(fields) - ADAPTER_SETTINGS)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown handler settings {unknown}; known: {sorted(fields)}")
    values = {k: v for k, v in settings.items() if k in fields}
    for name, value in values.items():
        if fields[name].type is tuple and isinstance(value, list):
            values[name] = tuple(value)
    return cls(**values)


def image_limits(settings) -> ImageLimits:
    return ImageLimits(
        max_bytes=settings.max_image_bytes,
        max_pixels=settings.max_image_pixels,
        max_side_px=settings.max_input_side_px,
    )


def read_archive_manifest(model_dir: Path) -> dict:
    """The archiver's manifest.json (weights, hashes, lineage); empty for hand-made archives."""
    path = Path(model_dir) / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else {}


class HandlerSettings:
    """from_config / to_config for the frozen dataclasses below."""

    @classmethod
    def from_config(cls, settings: dict):
        return from_settings(cls, settings)

    def to_config(self) -> dict:
        """Plain YAML values (tuples as lists) that `from_config` reads back unchanged."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class FastStyleSettings(HandlerSettings):
    styles: dict  # style name -> weight file inside the archive
    synthetic_styles: tuple = ()
    default_style: str = "candy"
    default_max_side_px: int = 1024
    min_side_px: int = 16
    max_side_px: int = 2048
    max_image_bytes: int = 20 * 1024 * 1024
    max_image_pixels: int = 36_000_000
    max_input_side_px: int = 8192
    # Under the archive's responseTimeout (120 s, a margin for load spikes): a batch that would outlive it is split, a
    # request that cannot fit is refused (handlers/services/admission.py).
    time_budget_s: float = 50.0
    cost_rates: Optional[dict] = None  # stage -> pinned s per unit; None: calibrate and learn
    # TransformerNet precision: auto is bf16 on CPUs with native bf16 (PSNR ~49 dB against
    # fp32, tests/imagelab/fast_style/test_fast_path.py), fp16 on CUDA, else fp32.
    dtype: str = "auto"
    # True: each image through the network alone, its pixels independent of its batch (the
    # API's promise); False: images of one style and size share network calls (what batching
    # usually buys on GPUs, not measured here; on the 2-core CPU measured no faster at 256 px
    # and slower from 512 px: BENCHMARKS.md fast_style).
    batch_invariant: bool = True

    def __post_init__(self):
        if self.dtype != "auto" and self.dtype not in DTYPES:
            raise ValueError(f"dtype must be auto or one of {sorted(DTYPES)}, got {self.dtype!r}")
        if not self.styles:
            raise ValueError("fast_style needs at least one style")
        if self.default_style not in self.styles:
            raise ValueError(f"default_style {self.default_style!r} is not among {sorted(self.styles)}")
        if not self.min_side_px <= self.default_max_side_px <= self.max_side_px:
            raise ValueError("default_max_side_px must lie within [min_side_px, max_side_px]")


@dataclass(frozen=True)
class NeuralStyleSettings(HandlerSettings):
    vgg_weights: str  # file inside the archive
    synthetic: bool = False
    # The most steps a request gets when it names none; fewer where the measured speed says
    # they would not fit time_budget_s at the request's max_side_px (imagelab/neural_style/speed.py).
    default_steps: int = 100
    # VGG19 under autocast: auto is bf16 where the device runs it natively, else fp32.
    dtype: str = "auto"
    # Pinned seconds per megapixel-step; None: measured at start-up.
    seconds_per_megapixel_step: Optional[float] = None
    default_max_side_px: int = 256
    # Under the archive's responseTimeout, so a long run returns its best image, marked
    # truncated, instead of being cut off by TorchServe with a 5xx.
    time_budget_s: float = 240.0
    max_image_bytes: int = 20 * 1024 * 1024
    max_image_pixels: int = 36_000_000
    max_input_side_px: int = 8192

    def __post_init__(self):
        if not STEPS_RANGE[0] <= self.default_steps <= STEPS_RANGE[1]:
            raise ValueError(f"default_steps must lie in {STEPS_RANGE}")
        if not MAX_SIDE_PX_RANGE[0] <= self.default_max_side_px <= MAX_SIDE_PX_RANGE[1]:
            raise ValueError(f"default_max_side_px must lie in {MAX_SIDE_PX_RANGE}")
        if self.time_budget_s <= 0:
            raise ValueError("time_budget_s must be positive")
        if self.dtype not in ("auto", "float32", "bfloat16"):
            raise ValueError(f"dtype must be auto, float32 or bfloat16, got {self.dtype!r}")
        if self.seconds_per_megapixel_step is not None and not self.seconds_per_megapixel_step > 0:
            raise ValueError("seconds_per_megapixel_step must be positive or None")


@dataclass(frozen=True)
class DiffusionServiceSettings(HandlerSettings):
    base_model: str  # diffusers folder: inside the archive (relative) or shared (absolute)
    adapters: dict = field(default_factory=dict)  # adapter name -> LoRA file in the archive
    lcm_adapter: Optional[str] = None
    synthetic: tuple = ()  # which of the above are tiny synthetic stand-ins
    dtype: str = "auto"
    batch_invariant: bool = True
    # Requests differing only in style share one pipeline call, per-row LoRAs (issue 19.2,
    # imagelab/diffusion/mixed_lora.py): auto = when batch_invariant is false (with it, fused
    # per-style groups stay); on; off.
    mixed_style_batches: str = "auto"
    default_steps: int = 25
    default_guidance: float = 7.5
    default_scheduler: str = "dpmpp"
    default_size_px: Optional[int] = None  # None: the UNet's native size
    min_size_px: int = 64
    max_size_px: int = 1024
    max_images: int = 4
    # Under the archive's responseTimeout: past it TorchServe kills the worker and answers 500
    # "Worker died."; the handler stops first and answers 504 itself.
    time_budget_s: float = 540.0
    # A shared base folder whose files differ from the manifest's hashes stops the worker;
    # false (the operator's opt-out) only logs a warning (handlers/services/base_model_check.py).
    verify_base_model: bool = True
    default_decoder: str = "full"  # or "fast" (TAESD)
    # torch.compile the UNet in a background thread (niced), eager until built, cached on disk
    # (imagelab/diffusion/fast_path.py). Off: not yet measured to pay on this 2-core machine
    # (loadtests/bench/sd15_fast_path.py); the tiny test archives stay eager either way.
    compile_unet: bool = False
    # Defaults on a CPU, where they can run (scheduler lcm needs the LCM-LoRA): e.g. animals'
    # {scheduler: lcm, steps: 4, guidance: 1.0}, seconds where 25 guided steps take minutes.
    cpu_defaults: Optional[dict] = None
    fast_decoder: Optional[str] = None  # TAESD folder (absolute or in the archive); None: stand-in
    cost_rates: Optional[dict] = None  # stage -> pinned s per unit; None: calibrate and learn
    # LoRA styles on demand (txt2img): `{adapters_folder}/{model}/{name}.safetensors`, watched
    # by the worker. The env var IMAGELAB_ADAPTERS_DIR overrides it; neither set: no folder.
    adapters_folder: Optional[str] = None
    adapter_poll_s: float = 2.0  # how often the folder is re-listed, at most
    adapter_cache_max_count: int = 8  # loaded folder adapters per worker (LRU)
    adapter_cache_max_mb: float = 1024.0  # and their file sizes together

    def __post_init__(self):
        if self.adapter_poll_s < 0 or self.adapter_cache_max_count < 1 or self.adapter_cache_max_mb <= 0:
            raise ValueError("adapter_poll_s must be >= 0, adapter_cache_max_count >= 1, adapter_cache_max_mb > 0")
        unknown = sorted(set(self.cpu_defaults or {}) - {"steps", "guidance", "scheduler"})
        if unknown:
            raise ValueError(f"cpu_defaults takes steps, guidance and scheduler; got {unknown}")
        if self.default_decoder not in ("full", "fast"):
            raise ValueError(f"default_decoder must be 'full' or 'fast', got {self.default_decoder!r}")
        if self.mixed_style_batches not in ("auto", "on", "off"):
            raise ValueError(f"mixed_style_batches must be auto, on or off, got {self.mixed_style_batches!r}")
        low, high = SIZE_PX_RANGE  # the core's limits (imagelab.diffusion.jobs); an archive narrows them
        if not low <= self.min_size_px <= self.max_size_px <= high or (self.min_size_px | self.max_size_px) % 8:
            raise ValueError(f"min_size_px/max_size_px must be multiples of 8 with {low} <= min <= max <= {high}")
        if not NUM_IMAGES_RANGE[0] <= self.max_images <= NUM_IMAGES_RANGE[1]:
            raise ValueError(f"max_images must be from {NUM_IMAGES_RANGE[0]} to {NUM_IMAGES_RANGE[1]}")
        if self.time_budget_s <= 0:
            raise ValueError("time_budget_s must be positive")

    def defaults_for(self, device: str, schedulers: tuple) -> dict:
        """The steps, guidance and scheduler defaults on `device`: `cpu_defaults` on a CPU
        when its scheduler is available there, the archive's defaults otherwise."""
        chosen = {"steps": self.default_steps, "guidance": self.default_guidance, "scheduler": self.default_scheduler}
        fast = self.cpu_defaults or {}
        if device == "cpu" and fast and fast.get("scheduler", self.default_scheduler) in schedulers:
            chosen.update(fast)
        return chosen
