"""neural_style: optimise an image over VGG19 features (Gatys et al.) for a user's content and
style images, streaming progress. Batch size 1: each request is its own optimisation."""

import logging
import random
import time
from dataclasses import dataclass, field

from PIL import Image

from handlers.common.errors import InvalidField
from handlers.common.fields import Fields
from handlers.common.images import decode_image
from handlers.common.service import (
    OUTPUT_FIELDS,
    ImageResult,
    OutputOptions,
    Service,
    ServiceContext,
    output_field_descriptions,
)
from handlers.services.settings import (
    NeuralStyleSettings,
    image_field_description,
    image_limits,
    read_archive_manifest,
)
from imagelab.neural_style import NeuralStyleConfig, load_vgg19_features, transfer
from imagelab.neural_style.config import INIT_MODES, MAX_SIDE_PX_RANGE, OPTIMIZERS, STEPS_RANGE

logger = logging.getLogger(__name__)

WEIGHT_MAX = 1e6
SEED_MAX = 2**31 - 1
FIELDS = (
    "content",
    "style_image",
    "steps",
    "max_side_px",
    "content_weight",
    "style_weight",
    "tv_weight",
    "init",
    "optimizer",
    "seed",
    "preserve_color",
    "time_budget_s",
    "stream",
) + OUTPUT_FIELDS


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

    def setup(self, context: ServiceContext) -> None:
        self.context = context
        self.settings = NeuralStyleSettings.from_config(context.settings)
        self.limits = image_limits(self.settings)
        self.manifest = read_archive_manifest(context.model_dir)
        self.features = load_vgg19_features(context.model_dir / self.settings.vgg_weights, context.device)
        kind = (
            "TINY SYNTHETIC VGG19 (offline stand-in, not ImageNet-trained)"
            if self.settings.synthetic
            else "real VGG19 weights"
        )
        logger.info("neural_style %s uses %s", context.model_version, kind)

    def describe(self) -> dict:
        s = self.settings
        defaults = NeuralStyleConfig()
        return {
            "model": self.name,
            "version": self.context.model_version,
            "synthetic_weights": s.synthetic,
            "fields": {
                "content": image_field_description(s),
                "style_image": image_field_description(s),
                "steps": {"type": "integer", "min": STEPS_RANGE[0], "max": STEPS_RANGE[1], "default": s.default_steps},
                "max_side_px": {
                    "type": "integer",
                    "min": MAX_SIDE_PX_RANGE[0],
                    "max": MAX_SIDE_PX_RANGE[1],
                    "default": s.default_max_side_px,
                },
                "content_weight": _weight_field(defaults.content_weight),
                "style_weight": _weight_field(defaults.style_weight),
                "tv_weight": _weight_field(defaults.tv_weight),
                "init": {"type": "choice", "choices": list(INIT_MODES), "default": defaults.init},
                "optimizer": {"type": "choice", "choices": list(OPTIMIZERS), "default": defaults.optimizer},
                "seed": {"type": "integer", "min": 0, "max": SEED_MAX, "default": "random"},
                "preserve_color": {"type": "boolean", "default": False},
                "time_budget_s": {"type": "number", "min": 0.1, "max": s.time_budget_s, "default": s.time_budget_s},
                **output_field_descriptions(streams=True),
            },
            "manifest": self.manifest,
        }

    def decode_request(self, fields: Fields) -> NeuralStyleRequest:
        s = self.settings
        fields.check_known(FIELDS)
        defaults = NeuralStyleConfig()
        seed = fields.integer("seed", None, 0, SEED_MAX)
        try:
            config = NeuralStyleConfig(
                steps=fields.integer("steps", s.default_steps, *STEPS_RANGE),
                max_side_px=fields.integer("max_side_px", s.default_max_side_px, *MAX_SIDE_PX_RANGE),
                content_weight=fields.number("content_weight", defaults.content_weight, 0.0, WEIGHT_MAX),
                style_weight=fields.number("style_weight", defaults.style_weight, 0.0, WEIGHT_MAX),
                tv_weight=fields.number("tv_weight", defaults.tv_weight, 0.0, WEIGHT_MAX),
                init=fields.choice("init", INIT_MODES, defaults.init),
                optimizer=fields.choice("optimizer", OPTIMIZERS, defaults.optimizer),
                seed=random.randrange(SEED_MAX) if seed is None else seed,
                preserve_color=fields.boolean("preserve_color", False),
                time_budget_s=fields.number("time_budget_s", s.time_budget_s, 0.1, s.time_budget_s),
            )
        except ValueError as error:  # cross-field rules of NeuralStyleConfig
            raise InvalidField(str(error), _field_named_in(str(error))) from None
        output = OutputOptions.from_fields(fields, streams=True)
        content = decode_image(fields.image_bytes("content", s.max_image_bytes), "content", self.limits)
        style_image = decode_image(fields.image_bytes("style_image", s.max_image_bytes), "style_image", self.limits)
        return NeuralStyleRequest(content, style_image, config, output)

    def predict(self, requests: list, progress) -> list:
        return [self._transfer(index, request, progress) for index, request in enumerate(requests)]

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


def _weight_field(default: float) -> dict:
    return {"type": "number", "min": 0, "max": WEIGHT_MAX, "default": default}


def _field_named_in(message: str) -> str:
    """NeuralStyleConfig's messages start with the field name."""
    name = message.split(" ", 1)[0]
    return name if name in FIELDS else "content_weight"
