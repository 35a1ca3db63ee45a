"""neural_style: optimise an image over VGG19 features (Gatys et al.) for a user's content and
style images, streaming progress. Batch size 1: each request is its own optimisation."""

import logging
import time
from dataclasses import dataclass, field

import torch
from PIL import Image

from handlers.common.errors import InvalidField
from handlers.common.fields import Fields
from handlers.common.service import ImageResult, OutputOptions, Service, ServiceContext, output_spec
from handlers.common.spec import SEED_FIELD, Field, FieldSpec
from handlers.services.settings import NeuralStyleSettings, image_limits, read_archive_manifest
from imagelab.cancellation import JobCancelled
from imagelab.neural_style import NeuralStyleConfig, load_vgg19_features, transfer
from imagelab.neural_style.config import INIT_MODES, MAX_SIDE_PX_RANGE, OPTIMIZERS, STEPS_RANGE, WEIGHT_RANGE
from imagelab.neural_style.images import fitted_size
from imagelab.neural_style.speed import StepSpeed, default_steps, measure_step_speed
from imagelab.neural_style.vgg import autocast_dtype_for
from imagelab.validation import InvalidValue

logger = logging.getLogger(__name__)

_DEFAULTS = NeuralStyleConfig()


def _weight(name: str, description: str) -> Field:
    low, high = WEIGHT_RANGE
    return Field(name, "number", description, default=getattr(_DEFAULTS, name), low=low, high=high)


# Limits from the core (imagelab.neural_style.config); the default steps, side and time budget
# from the archive (NeuralStyleSettings) at setup.
SPEC = FieldSpec(
    Field("content", "image", "The photo whose layout is kept", required=True),
    Field("style_image", "image", "The picture whose textures and colours are transferred", required=True),
    Field(
        "steps", "integer", "Optimisation steps (one loss and gradient each)", low=STEPS_RANGE[0], high=STEPS_RANGE[1]
    ),
    Field(
        "max_side_px",
        "integer",
        "Longest side of the output",
        low=MAX_SIDE_PX_RANGE[0],
        high=MAX_SIDE_PX_RANGE[1],
        unit="px",
    ),
    _weight("content_weight", "Weight of keeping the content's features"),
    _weight("style_weight", "Weight of matching the style's Gram matrices"),
    _weight("tv_weight", "Weight of smoothness (total variation)"),
    Field("init", "choice", "Start from the content photo or from noise", default=_DEFAULTS.init, choices=INIT_MODES),
    Field("optimizer", "choice", "L-BFGS (Gatys et al.) or Adam", default=_DEFAULTS.optimizer, choices=OPTIMIZERS),
    SEED_FIELD,
    Field("preserve_color", "boolean", "Keep the content's colours; transfer luminance only", default=False),
    Field(
        "time_budget_s",
        "number",
        "Wall-clock limit; the best image so far comes back marked truncated",
        low=0.1,
        unit="s",
    ),
    output_spec(streams=True),
)
# Decoded values that configure the run: every NeuralStyleConfig field the spec declares.
CONFIG_FIELDS = tuple(name for name in NeuralStyleConfig.__dataclass_fields__ if name in SPEC)


@dataclass
class NeuralStyleRequest:
    content: Image.Image
    style_image: Image.Image
    config: NeuralStyleConfig
    output: OutputOptions = field(default_factory=OutputOptions)


class NeuralStyleService(Service):
    name = "neural_style"
    raw_image_field = None  # two images: multipart, JSON, v2 or gRPC, never a bare body
    streams = True
    spec = SPEC

    def setup(self, context: ServiceContext) -> None:
        self.context = context
        self.settings = s = NeuralStyleSettings.from_config(context.settings)
        self.manifest = read_archive_manifest(context.model_dir)
        autocast = {"auto": autocast_dtype_for(context.device), "float32": None, "bfloat16": torch.bfloat16}[s.dtype]
        self.features = load_vgg19_features(context.model_dir / s.vgg_weights, context.device, autocast)
        kind = "TINY SYNTHETIC VGG19 (offline stand-in, not ImageNet-trained)" if s.synthetic else "real VGG19 weights"
        self.precision = "fp32" if autocast is None else f"{str(autocast).removeprefix('torch.')} autocast"
        logger.info("neural_style %s uses %s in %s", context.model_version, kind, self.precision)
        if s.seconds_per_megapixel_step is None:
            self.speed = measure_step_speed(self.features)
        else:
            self.speed = StepSpeed(s.seconds_per_megapixel_step, 0)
        default_side_px = s.default_max_side_px
        logger.info(
            "neural_style speed: %.3g steps/s at %d px; %d steps by default there (%g s budget)",
            self.speed.steps_per_s(default_side_px),
            default_side_px,
            self.default_steps(default_side_px, s.time_budget_s),
            s.time_budget_s,
        )
        limits = {"limits": image_limits(s)}
        self.spec = SPEC.bind(
            content=limits,
            style_image=limits,
            steps={"default": self.default_steps(default_side_px, s.time_budget_s)},
            max_side_px={"default": default_side_px},
            time_budget_s={"high": s.time_budget_s, "default": s.time_budget_s},
        )

    def default_steps(self, max_side_px: int, time_budget_s: float) -> int:
        """Steps for a request that names none: the archive's default_steps, or fewer when this
        worker's measured speed says they would not finish within time_budget_s."""
        return default_steps(self.speed.seconds_per_step(max_side_px), time_budget_s, self.settings.default_steps)

    def describe(self) -> dict:
        return {
            "model": self.name,
            "version": self.context.model_version,
            "synthetic_weights": self.settings.synthetic,
            "fields": self.spec.describe(),
            "speed": self.describe_speed(),
            "manifest": self.manifest,
        }

    def describe_speed(self) -> dict:
        """What this worker measured, and the default steps it gives at a few sizes."""
        s = self.settings
        return {
            "precision": self.precision,
            "steps_per_s": {side: round(self.speed.steps_per_s(side), 4) for side in (256, 512, 1024)},
            "seconds_per_megapixel_step": round(self.speed.seconds_per_megapixel_step, 6),
            "measured_at_px": self.speed.measured_at_px or None,  # None: pinned by the archive
            "default_steps": {side: self.default_steps(side, s.time_budget_s) for side in (256, 512, 1024)},
            "default_steps_rule": (
                f"without 'steps', a request gets the most steps, up to {s.default_steps}, that fit its "
                "time_budget_s at its max_side_px at the measured speed (imagelab/neural_style/speed.py)"
            ),
        }

    def decode_request(self, fields: Fields) -> NeuralStyleRequest:
        v = self.spec.decode(fields)
        if not fields.has("steps"):
            v["steps"] = self.default_steps(v["max_side_px"], v["time_budget_s"])
        try:
            config = NeuralStyleConfig(**{name: v[name] for name in CONFIG_FIELDS})
            for name in ("content", "style_image"):  # e.g. 8192x100 has no 16 px side at 256
                fitted_size(name, v[name].size, config.max_side_px)
        except InvalidValue as error:  # the cross-field rules of NeuralStyleConfig
            raise InvalidField(str(error), error.field_name) from None
        return NeuralStyleRequest(v["content"], v["style_image"], config, OutputOptions.from_values(v))

    def predict(self, requests: list, progress) -> list:
        return [self._transfer_or_cancelled(index, request, progress) for index, request in enumerate(requests)]

    def _transfer_or_cancelled(self, index: int, request: NeuralStyleRequest, progress):
        """`progress` raises JobCancelled after the step its job was cancelled in (the runner
        checks the job's cancel marker there, once per L-BFGS or Adam iteration): that request
        ends, the next one runs."""
        try:
            return self._transfer(index, request, progress)
        except JobCancelled as cancelled:
            return cancelled

    def _transfer(self, index: int, request: NeuralStyleRequest, progress) -> ImageResult:
        def on_step(step: int, of: int, content_loss: float, style_loss: float) -> None:
            progress(index, {"step": step, "of": of, "content_loss": content_loss, "style_loss": style_loss})

        started = time.perf_counter()
        result = transfer(request.content, request.style_image, request.config, self.features, on_step)
        c = request.config
        return ImageResult(
            images=[result.image],
            parameters={
                "steps": c.steps,
                "max_side_px": c.max_side_px,
                "content_weight": c.content_weight,
                "style_weight": c.style_weight,
                "tv_weight": c.tv_weight,
                "init": c.init,
                "optimizer": c.optimizer,
                "preserve_color": c.preserve_color,
                "time_budget_s": c.time_budget_s,
            },
            seeds=[c.seed],
            timings_ms={"optimise": (time.perf_counter() - started) * 1000},
            extra={
                "truncated": result.truncated,
                "steps_done": result.steps_done,
                "content_loss": result.content_loss,
                "style_loss": result.style_loss,
            },
        )
