"""fast_style: feed-forward style transfer with a TransformerNet per built-in style."""

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field

from PIL import Image

from handlers.common.fields import Fields
from handlers.common.images import decode_image, resize_to_fit
from handlers.common.service import (
    OUTPUT_FIELDS,
    ImageResult,
    OutputOptions,
    Service,
    ServiceContext,
    output_field_descriptions,
)
from handlers.services.settings import (
    FastStyleSettings,
    image_field_description,
    image_limits,
    read_archive_manifest,
)
from imagelab.fast_style.stylize import batch_to_images, images_to_batch, stylize
from imagelab.fast_style.weights import load_transformer_net

logger = logging.getLogger(__name__)

FIELDS = ("image", "style", "max_side_px") + OUTPUT_FIELDS


@dataclass
class FastStyleRequest:
    image: Image.Image
    style: str
    max_side_px: int
    output: OutputOptions = field(default_factory=OutputOptions)


class FastStyleService(Service):
    name = "fast_style"
    raw_image_field = "image"

    def setup(self, context: ServiceContext) -> None:
        self.context = context
        self.settings = FastStyleSettings.from_config(context.settings)
        self.limits = image_limits(self.settings)
        self.manifest = read_archive_manifest(context.model_dir)
        self.models = {
            style: load_transformer_net(context.model_dir / path, context.device)
            for style, path in self.settings.styles.items()
        }
        for style in sorted(self.models):
            kind = (
                "TINY SYNTHETIC weights (not a trained style)"
                if style in self.settings.synthetic_styles
                else "real weights"
            )
            logger.info("fast_style %s: style %s uses %s", context.model_version, style, kind)

    def describe(self) -> dict:
        s = self.settings
        return {
            "model": self.name,
            "version": self.context.model_version,
            "styles": sorted(self.models),
            "synthetic_styles": sorted(s.synthetic_styles),
            "fields": {
                "image": image_field_description(s),
                "style": {"type": "choice", "choices": sorted(self.models), "default": s.default_style},
                "max_side_px": {
                    "type": "integer",
                    "min": s.min_side_px,
                    "max": s.max_side_px,
                    "default": s.default_max_side_px,
                },
                **output_field_descriptions(),
            },
            "manifest": self.manifest,
        }

    def decode_request(self, fields: Fields) -> FastStyleRequest:
        s = self.settings
        fields.check_known(FIELDS)
        style = fields.choice("style", sorted(self.models), s.default_style)
        max_side_px = fields.integer("max_side_px", s.default_max_side_px, s.min_side_px, s.max_side_px)
        output = OutputOptions.from_fields(fields, streams=False)
        image = decode_image(fields.image_bytes("image", s.max_image_bytes), "image", self.limits)
        return FastStyleRequest(resize_to_fit(image, max_side_px), style, max_side_px, output)

    def predict(self, requests: list, progress) -> list:
        """Group by (style, size) so each group is one tensor batch through one network."""
        groups = defaultdict(list)
        for index, request in enumerate(requests):
            groups[(request.style, request.image.size)].append(index)
        results = [None] * len(requests)
        for (style, _), indices in groups.items():
            started = time.perf_counter()
            batch = images_to_batch([requests[i].image for i in indices])  # (B, 3, H, W)
            images = batch_to_images(stylize(self.models[style], batch))
            elapsed_ms = (time.perf_counter() - started) * 1000
            for i, image in zip(indices, images):
                request = requests[i]
                results[i] = ImageResult(
                    images=[image],
                    parameters={"style": style, "max_side_px": request.max_side_px},
                    timings_ms={"stylize": elapsed_ms},
                    extra={"batch_size": len(indices)},
                )
        return results
