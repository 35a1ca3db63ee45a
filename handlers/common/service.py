"""The contract every capability implements, modelled on LitServe's: `setup` once per worker,
then per batch `decode_request` (the model's FieldSpec) -> `predict`; the runner encodes the
results (handlers/common/responses.py). Nothing here knows TorchServe;
`handlers/torchserve_adapter.py` is the only file that does."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Optional

from PIL import Image

from handlers.common.errors import InvalidField
from handlers.common.fields import Fields
from handlers.common.images import OUTPUT_FORMATS
from handlers.common.spec import Field, FieldSpec
from imagelab.cancellation import JOB_ID_PATTERN, InvalidJobId, check_job_id

# progress(index of the request in the list given to predict, event) -> None
Progress = Callable[[int, dict], None]


@dataclass(frozen=True)
class ServiceContext:
    model_name: str
    model_version: str
    model_dir: Path
    settings: dict  # the `handler:` section of the archive's model-config.yaml
    device: str  # "cpu" or "cuda:N"


# How a result goes back, shared by every capability (API.md, Responses).
OUTPUT_SPEC = FieldSpec(
    Field("format", "choice", "Encoding of the returned images", default="png", choices=tuple(OUTPUT_FORMATS)),
    Field("quality", "integer", "JPEG and WEBP quality; PNG is lossless", default=90, low=1, high=100),
    Field(
        "response_format",
        "choice",
        "image: the encoded image itself; json: base64 images with seeds and parameters",
        default="image",
        choices=("image", "json"),
    ),
)
STREAM_FIELD = Field("stream", "boolean", "Send progress events as NDJSON lines before the result", default=False)
OUTPUT_FIELDS = tuple(f.name for f in OUTPUT_SPEC)


def _job_id(text: str) -> str:
    try:
        return check_job_id(text)
    except InvalidJobId as error:
        raise InvalidField(f"'job_id': {error}", "job_id") from None


# Models that stream run long enough to cancel (imagelab/cancellation.py, README "Cancel").
JOB_ID_FIELD = Field(
    "job_id",
    "text",
    "Your own id for this job, to cancel it by (POST /v2/cancel/{job_id} on the v2 front); "
    "without it the server makes one and sends it in the first progress event",
    default=None,
    max_chars=64,
    parse=_job_id,
    extra={"pattern": JOB_ID_PATTERN},
)


def output_spec(streams: bool) -> FieldSpec:
    return FieldSpec(OUTPUT_SPEC, STREAM_FIELD, JOB_ID_FIELD) if streams else OUTPUT_SPEC


@dataclass(frozen=True)
class OutputOptions:
    format: str = OUTPUT_SPEC["format"].default
    quality: int = OUTPUT_SPEC["quality"].default
    response_format: str = OUTPUT_SPEC["response_format"].default  # "image" (raw bytes) or "json"
    stream: bool = STREAM_FIELD.default
    job_id: Optional[str] = None  # the client's own job id (JOB_ID_FIELD), else the runner makes one

    @staticmethod
    def from_values(values: Mapping) -> "OutputOptions":
        """From a spec's decoded values (OUTPUT_SPEC, and STREAM_FIELD and JOB_ID_FIELD where
        streaming is on)."""
        return OutputOptions(
            values["format"],
            values["quality"],
            values["response_format"],
            bool(values.get("stream", False)),
            values.get("job_id"),
        )

    @staticmethod
    def from_fields(fields: Fields, streams: bool) -> "OutputOptions":
        """For services that decode by hand: reads only the output fields."""
        return OutputOptions.from_values({f.name: f.decode(fields) for f in output_spec(streams)})


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
    """Subclasses set `name`, `raw_image_field` and `spec` and implement the stages.

    `spec` is the model's FieldSpec: declared once on the class, bound at setup to what the
    archive and the engine know (styles, limits, defaults) and then used by `decode_request`
    and `describe`."""

    name = "service"
    raw_image_field: Optional[str] = None  # the field a bare `Content-Type: image/*` body fills
    streams = False  # whether `stream=true` is accepted
    spec: FieldSpec = FieldSpec()

    @property
    def field_names(self) -> frozenset:
        """The request field names this service accepts (from its spec), e.g. for metric labels."""
        return self.spec.names

    def setup(self, context: ServiceContext) -> None:
        raise NotImplementedError

    def describe(self) -> dict:
        """Styles or classes, and `fields`: `self.spec.describe()`, for `?customized=true`."""
        raise NotImplementedError

    def decode_request(self, fields: Fields):
        """Validated request object with an `output: OutputOptions` attribute; raises
        RequestError subclasses for bad input (`self.spec.decode` does the fields)."""
        raise NotImplementedError

    def predict(self, requests: list, progress: Progress) -> list:
        """Per request, in order: its ImageResult, a ServiceError (its 4xx/5xx), or any other
        exception that failed it alone (the runner logs it and answers 500, or 507 for OOM)."""
        raise NotImplementedError
