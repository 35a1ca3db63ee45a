"""The fast-style training job's configuration: one frozen dataclass, validated at construction.

Defaults are pytorch/examples' fast_neural_style (Johnson et al. 2016): 256 px crops, batch 4,
Adam 1e-3, content weight 1e5, style weight 1e10, two epochs.
"""

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

_STYLE_NAME = re.compile(r"^[a-z0-9_]+$")


@dataclass(frozen=True)
class FastStyleTrainConfig:
    content_dir: Path
    style_image: Path
    style: str  # the new style's name, as requests will ask for it
    weights_dir: Path | None = None  # None: the default weights/ root (VGG16 comes from there)
    image_size_px: int = 256
    style_size_px: int | None = None  # None: the style image as it is
    batch_size: int = 4
    epochs: int = 2
    max_steps: int | None = None  # a cap on optimizer steps (None: epochs decide)
    learning_rate: float = 1e-3
    content_weight: float = 1e5
    style_weight: float = 1e10
    seed: int = 42
    checkpoint_every: int = 2000  # optimizer steps; 0: only at the end and on Ctrl-C
    keep_checkpoints: int = 2
    device: str = "cpu"

    def __post_init__(self):
        for name in ("content_dir", "style_image", "weights_dir"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))
        if not _STYLE_NAME.match(self.style or ""):
            raise ValueError(f"style must match [a-z0-9_]+, got {self.style!r}")
        if self.image_size_px < 16 or self.image_size_px % 4:
            raise ValueError(f"image_size_px must be a multiple of 4, at least 16; got {self.image_size_px}")
        if self.style_size_px is not None and self.style_size_px < 16:
            raise ValueError(f"style_size_px must be at least 16 (or None), got {self.style_size_px}")
        for name in ("batch_size", "epochs", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be at least 1 (or None), got {self.max_steps}")
        if not (self.learning_rate > 0 and self.content_weight >= 0 and self.style_weight >= 0):
            raise ValueError("learning_rate must be > 0, content_weight and style_weight >= 0")
        if self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be >= 0, got {self.checkpoint_every}")

    @property
    def capability(self) -> str:
        """The archive the trained style goes into."""
        return "fast_style"

    @staticmethod
    def from_dict(values: dict) -> "FastStyleTrainConfig":
        """The inverse of runs.to_jsonable (config.json -> config), for --resume."""
        known = {f.name for f in dataclasses.fields(FastStyleTrainConfig)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown fast-style config keys {unknown}")
        return FastStyleTrainConfig(**values)
