"""Settings every capability reads from its archive's `handler:` section, and archive facts."""

import json
from dataclasses import fields as dataclass_fields
from pathlib import Path

from handlers.common.images import ImageLimits

# Read by the server adapter, not by the services.
ADAPTER_SETTINGS = {"threads_per_worker", "fault_injection"}


def from_settings(cls, settings: dict):
    """Build a frozen settings dataclass from a YAML mapping; unknown keys are config errors."""
    names = {f.name for f in dataclass_fields(cls)}
    unknown = sorted(set(settings) - names - ADAPTER_SETTINGS)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown handler settings {unknown}; known: {sorted(names)}")
    return cls(**{k: v for k, v in settings.items() if k in names})


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


def image_field_description(settings) -> dict:
    """How `describe` lists an image input, from the archive's image limits."""
    return {
        "type": "image",
        "required": True,
        "formats": ["jpeg", "png", "webp"],
        "max_bytes": settings.max_image_bytes,
        "max_pixels": settings.max_image_pixels,
        "max_side_px": settings.max_input_side_px,
    }
