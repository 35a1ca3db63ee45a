"""fast_style: feed-forward style transfer with a TransformerNet per built-in style."""

import logging
import time
from dataclasses import dataclass, field

from PIL import Image

from handlers.common.fields import Fields
from handlers.common.images import resize_to_fit
from handlers.common.service import ImageResult, OutputOptions, Service, ServiceContext, output_spec
from handlers.common.spec import Field, FieldSpec
from handlers.services.admission import FastStyleAdmission
from handlers.services.settings import FastStyleSettings, image_limits, read_archive_manifest
from imagelab.devices import resolve_dtype
from imagelab.fast_style.stylize import batch_to_images, images_to_batch, inference_path, stylize
from imagelab.fast_style.weights import load_transformer_net

logger = logging.getLogger(__name__)

# Styles, the size range and the defaults come from the archive (FastStyleSettings) at setup.
SPEC = FieldSpec(
    Field("image", "image", "The photo to stylise", required=True),
    Field("style", "choice", "The trained style network to apply"),
    Field("max_side_px", "integer", "Longest side of the output; larger photos are scaled down", unit="px"),
    output_spec(streams=False),
)


@dataclass
class FastStyleRequest:
    image: Image.Image
    style: str
    max_side_px: int
    output: OutputOptions = field(default_factory=OutputOptions)


class FastStyleService(Service):
    name = "fast_style"
    raw_image_field = "image"
    spec = SPEC

    def setup(self, context: ServiceContext) -> None:
        self.context = context
        self.settings = s = FastStyleSettings.from_config(context.settings)
        self.manifest = read_archive_manifest(context.model_dir)
        dtype = resolve_dtype(s.dtype, context.device)
        self.models = {
            style: load_transformer_net(context.model_dir / path, context.device, dtype, channels_last=True)
            for style, path in self.settings.styles.items()
        }
        self.inference_path = inference_path(self.models[s.default_style])
        logger.info(
            "fast_style %s runs TransformerNet in %s (dtype %s)", context.model_version, self.inference_path, s.dtype
        )
        for style in sorted(self.models):
            kind = (
                "TINY SYNTHETIC weights (not a trained style)"
                if style in self.settings.synthetic_styles
                else "real weights"
            )
            logger.info("fast_style %s: style %s uses %s", context.model_version, style, kind)
        self.spec = SPEC.bind(
            image={"limits": image_limits(s)},
            style={"choices": sorted(self.models), "default": s.default_style},
            max_side_px={"low": s.min_side_px, "high": s.max_side_px, "default": s.default_max_side_px},
        )
        self.admission = FastStyleAdmission(s.time_budget_s, s.cost_rates)
        network = self.models[s.default_style]
        self.admission.calibrate(lambda px: stylize(network, images_to_batch([Image.new("RGB", (px, px))])))

    def describe(self) -> dict:
        s = self.settings
        return {
            "model": self.name,
            "version": self.context.model_version,
            "styles": sorted(self.models),
            "synthetic_styles": sorted(s.synthetic_styles),
            "fields": self.spec.describe(),
            "speed": self.admission.describe(),
            "inference": {
                "path": self.inference_path,
                "dtype_setting": s.dtype,
                "batch_invariant": s.batch_invariant,
                "images_per_call": 1 if s.batch_invariant else "up to max_pixels_per_call",
                "compiled": False,
            },
            "max_pixels_per_call": s.max_side_px**2,
            "manifest": self.manifest,
        }

    def decode_request(self, fields: Fields) -> FastStyleRequest:
        v = self.spec.decode(fields)
        image = resize_to_fit(v["image"], v["max_side_px"])
        self.admission.check(*image.size, self.settings.min_side_px)  # 422 TooExpensive before any work
        return FastStyleRequest(image, v["style"], v["max_side_px"], OutputOptions.from_values(v))

    def predict(self, requests: list, progress) -> list:
        """What fits the time budget runs (in batch order); the rest is 503 (admission.py)."""
        work_of = lambda request: self.admission.work_of(*request.image.size)  # noqa: E731
        return self.admission.run_within_budget(requests, work_of, self._stylize, progress)

    def _stylize(self, requests: list, progress) -> list:
        """Each network call of `_calls`, timed and observed by admission; every result says how
        many requests ran in this batch (`batch_size`) and how many images its call held."""
        results = [None] * len(requests)
        for indices in self._calls(requests):
            style = requests[indices[0]].style
            started = time.perf_counter()
            batch = images_to_batch([requests[i].image for i in indices])  # (B, 3, H, W)
            images = batch_to_images(stylize(self.models[style], batch))
            elapsed_ms = (time.perf_counter() - started) * 1000
            self.admission.observe(elapsed_ms / 1000, *requests[indices[0]].image.size, len(indices))
            for i, image in zip(indices, images):
                request = requests[i]
                results[i] = ImageResult(
                    images=[image],
                    parameters={"style": style, "max_side_px": request.max_side_px},
                    timings_ms={"stylize": elapsed_ms},
                    extra={"batch_size": len(requests), "network_batch": len(indices)},
                )
        return results

    def _calls(self, requests: list) -> list[list[int]]:
        """The requests' indices per network call. batch_invariant: one image per call, so an
        image's pixels cannot depend on its neighbours (channels_last kernels round by batch
        size); on the 2-core CPU measured it is also as fast per image at 256 px and faster
        from 512 px up (BENCHMARKS.md fast_style). Else the images of one style and size share calls of at
        most one max-size image's pixels, which bounds the activations' peak memory."""
        if self.settings.batch_invariant:
            return [[index] for index in range(len(requests))]
        groups: dict = {}
        per_call = self.settings.max_side_px**2
        for index, request in enumerate(requests):
            width, height = request.image.size
            calls = groups.setdefault((request.style, request.image.size), [[]])
            if (len(calls[-1]) + 1) * width * height > per_call and calls[-1]:
                calls.append([])
            calls[-1].append(index)
        return [call for calls in groups.values() for call in calls]
