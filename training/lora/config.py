"""The LoRA fine-tuning job's configuration: frozen dataclasses, validated at construction."""

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

from training.schedule import LR_SCHEDULES


@dataclass(frozen=True)
class Augmentation:
    """Seeded geometric and photometric jitter. `variants` augmented copies per image
    (0: none); variant 0 is always the plain image. Each variant's parameters depend only on
    (seed, image, variant), so a variant's VAE latent can be cached and reused."""

    variants: int = 3  # the seed trains with augmentation on
    rotation_deg: float = 10.0
    translate_frac: float = 0.05
    scale_min: float = 0.9
    scale_max: float = 1.1
    brightness: float = 0.1  # factor drawn from [1 - b, 1 + b]

    def __post_init__(self):
        if self.variants < 0:
            raise ValueError(f"augment variants must be >= 0, got {self.variants}")
        if self.rotation_deg < 0 or not 0 <= self.translate_frac < 0.5 or not 0 <= self.brightness < 1:
            raise ValueError("rotation_deg >= 0, translate_frac in [0, 0.5), brightness in [0, 1) required")
        if not 0 < self.scale_min <= self.scale_max:
            raise ValueError(f"need 0 < scale_min <= scale_max, got {self.scale_min}, {self.scale_max}")

    def variant_for_epoch(self, epoch: int) -> int:
        return epoch % (self.variants + 1)


CAPABILITIES = ("animals", "txt2img")
DATASET_KINDS = ("classes", "style")
MIXED_PRECISION = ("auto", "no", "bf16", "fp16")
LATENT_CACHES = ("disk", "memory")
INIT_LORA_WEIGHTS = ("default", "gaussian")  # peft: True (Kaiming A, zero B), "gaussian"
TARGET_MODULES = ("to_q", "to_k", "to_v", "to_out.0")  # the UNet attention projections
_STYLE_NAME = re.compile(r"^[a-z0-9_]+$")


@dataclass(frozen=True)
class LoraTrainConfig:
    data_dir: Path
    capability: str = "animals"  # which archive the LoRA goes into
    style: str | None = None  # txt2img: the style (adapter) name; animals: always "animals"
    dataset: str | None = None  # None: "classes" for animals, "style" for txt2img
    token: str | None = None  # style datasets: the word in the prompts (default: the style)
    model_dir: Path | None = None  # None: weights/sd15, else its tiny twin
    weights_dir: Path | None = None  # None: archiver's default weights/ root
    resolution_px: int = 256
    val_fraction: float = 0.2
    augmentation: Augmentation = field(default_factory=Augmentation)
    # The seed's recipe (issue 18): rank 2, alpha 16 (a scale alpha/rank of 8), no dropout, a
    # decaying (cosine) learning rate, augmentation on, 256 px centre crops, 80/20 stratified.
    rank: int = 2
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    init_lora_weights: str = "default"
    learning_rate: float = 1e-4
    lr_schedule: str = "cosine"
    warmup_steps: int = 0
    weight_decay: float = 1e-2
    max_grad_norm: float = 1.0
    batch_size: int = 4
    grad_accum_steps: int = 1
    epochs: int = 10
    max_steps: int | None = None  # a cap on optimizer steps (None: epochs decide)
    mixed_precision: str = "auto"
    device: str = "cpu"
    seed: int = 0
    checkpoint_every: int = 100  # optimizer steps; 0: only at the end and on Ctrl-C
    keep_checkpoints: int = 2
    latent_cache: str = "disk"
    validation_images: int = 4  # images generated per epoch for the CLIP score (0: none)
    validation_steps: int = 20
    validation_guidance: float = 7.5

    def __post_init__(self):
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        set_("data_dir", Path(self.data_dir))
        if self.model_dir is not None:
            set_("model_dir", Path(self.model_dir))
        if self.weights_dir is not None:
            set_("weights_dir", Path(self.weights_dir))
        if isinstance(self.augmentation, dict):
            set_("augmentation", Augmentation(**self.augmentation))
        _choice("capability", self.capability, CAPABILITIES)
        if self.capability == "animals":
            if self.style not in (None, "animals"):
                raise ValueError(f"style is always 'animals' for the animals capability, got {self.style!r}")
            set_("style", "animals")
        elif not self.style or not _STYLE_NAME.match(self.style) or self.style in ("none", "animals", "lcm"):
            raise ValueError(f"txt2img needs --style matching [a-z0-9_]+ and not none/animals/lcm, got {self.style!r}")
        set_("dataset", self.dataset or ("classes" if self.capability == "animals" else "style"))
        _choice("dataset", self.dataset, DATASET_KINDS)
        if self.dataset == "style":
            set_("token", self.token or self.style.replace("_", " "))
        _choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        _choice("mixed_precision", self.mixed_precision, MIXED_PRECISION)
        _choice("latent_cache", self.latent_cache, LATENT_CACHES)
        _choice("init_lora_weights", self.init_lora_weights, INIT_LORA_WEIGHTS)
        if self.mixed_precision == "fp16" and not self.device.startswith("cuda"):
            raise ValueError("mixed_precision fp16 needs a CUDA device; on CPU use bf16 or no")
        if self.resolution_px < 16 or self.resolution_px % 8:
            raise ValueError(f"resolution_px must be a multiple of 8, at least 16; got {self.resolution_px}")
        for name in ("rank", "batch_size", "grad_accum_steps", "epochs", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("warmup_steps", "checkpoint_every", "validation_images"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be at least 1 (or None), got {self.max_steps}")
        if not self.lora_alpha > 0 or not self.learning_rate > 0 or not self.max_grad_norm > 0:
            raise ValueError("lora_alpha, learning_rate and max_grad_norm must be > 0")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if self.validation_steps < 1:
            raise ValueError(f"validation_steps must be at least 1, got {self.validation_steps}")

    @staticmethod
    def from_dict(values: dict) -> "LoraTrainConfig":
        """The inverse of runs.to_jsonable (config.json -> config), for --resume."""
        known = {f.name for f in dataclasses.fields(LoraTrainConfig)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown LoRA config keys {unknown}")
        return LoraTrainConfig(**values)


def _choice(name: str, value, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
