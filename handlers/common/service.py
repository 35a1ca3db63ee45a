"""The contract every capability implements, modelled on LitServe's: `setup` once per worker,
then per batch `decode_request` -> `predict` -> `encode_response`. Nothing here knows
TorchServe; `handlers/torchserve_adapter.py` is the only file that does."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from PIL import Image

from handlers.common.fields import Fields
from handlers.common.images import OUTPUT_FORMATS

# progress(index of the request in the list given to predict, event) -> None
Progress = Callable[[int, dict], None]


@dataclass(frozen=True)
class ServiceContext:
    model_name: str
    model_version: str
    model_dir: Path
    settings: dict  # the `handler:` section of the archive's model-config.yaml
    device: str  # "cpu" or "cuda:N"


@dataclass(frozen=True)
class OutputOptions:
    """How a result goes back: shared by every capability (API.md, Responses)."""

    format: str = "png"
    quality: int = 90
    response_format: str = "image"  # "image" (raw bytes) or "json"
    stream: bool = False

    @staticmethod
    def from_fields(fields: Fields, streams: bool) -> "OutputOptions":
        return OutputOptions(
            format=fields.choice("format", OUTPUT_FORMATS, "png"),
            quality=fields.integer("quality", 90, 1, 100),
            response_format=fields.choice("response_format", ("image", "json"), "image"),
            stream=fields.boolean("stream", False) if streams else False,
        )


OUTPUT_FIELDS = ("format", "quality", "response_format")


def output_field_descriptions(streams: bool = False) -> dict:
    """The OutputOptions fields as `describe` lists them."""
    described = {
        "format": {"type": "choice", "choices": list(OUTPUT_FORMATS), "default": "png"},
        "quality": {"type": "integer", "min": 1, "max": 100, "default": 90},
        "response_format": {"type": "choice", "choices": ["image", "json"], "default": "image"},
    }
    if streams:
        described["stream"] = {"type": "boolean", "default": False}
    return described


@dataclass
class ImageResult:
    images: list  # of PIL images
    parameters: dict  # the resolved request parameters, echoed to the client
    seeds: Optional[list] = None
    timings_ms: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)  # capability-specific metadata (truncated, ...)

    @property
    def size(self) -> tuple:
        first: Image.Image = self.images[0]
        return first.size


class Service:
    """Subclasses set `name` and `raw_image_field` and implement the four stages."""

    name = "service"
    raw_image_field: Optional[str] = None  # the field a bare `Content-Type: image/*` body fills
    streams = False  # whether `stream=true` is accepted

    def setup(self, context: ServiceContext) -> None:
        raise NotImplementedError

    def describe(self) -> dict:
        """Styles or classes, parameter ranges and defaults, for `?customized=true`."""
        raise NotImplementedError

    def decode_request(self, fields: Fields):
        """Validated request object with an `output: OutputOptions` attribute; raises
        RequestError subclasses for bad input."""
        raise NotImplementedError

    def predict(self, requests: list, progress: Progress) -> list:
        """One ImageResult or RequestError per request, in order."""
        raise NotImplementedError
