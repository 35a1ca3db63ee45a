"""What txt2img and animals share: an SD 1.5 engine with LoRA adapters, the generation fields
(steps, guidance, seed, size, scheduler) and the 422 for prompts past CLIP's 77 tokens."""

import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from handlers.common.errors import DeadlineExceeded, InvalidField, PromptTooLong
from handlers.common.fields import Fields
from handlers.common.service import ImageResult, OutputOptions, Service, ServiceContext, output_field_descriptions
from handlers.services.settings import DiffusionServiceSettings, read_archive_manifest
from imagelab.diffusion import DiffusionEngine, DiffusionSettings, GenerationJob, PromptTooLongError

logger = logging.getLogger(__name__)

SEED_MAX = 2**31 - 1
STEPS_RANGE = (1, 100)
GUIDANCE_RANGE = (1.0, 20.0)
PROMPT_MAX_CHARS = 2000  # far past 77 tokens; the token count decides, this bounds the work
GENERATION_FIELDS = (
    "steps",
    "guidance",
    "seed",
    "width",
    "height",
    "scheduler",
    "stream",
    "format",
    "quality",
    "response_format",
)


@dataclass
class DiffusionRequest:
    job: GenerationJob
    parameters: dict  # what the client sees echoed back
    output: OutputOptions = field(default_factory=OutputOptions)
    postprocess: Optional[object] = None  # PIL image -> PIL image, e.g. colour adjustments


class DiffusionService(Service):
    """Subclasses decode their own fields into a DiffusionRequest via `generation_fields`."""

    streams = True

    def setup(self, context: ServiceContext) -> None:
        self.context = context
        self.settings = DiffusionServiceSettings.from_config(context.settings)
        s = self.settings
        base = Path(s.base_model)
        base = base if base.is_absolute() else context.model_dir / base
        self.engine = DiffusionEngine(
            DiffusionSettings(
                model_dir=base,
                device=context.device,
                dtype=s.dtype,
                adapters={name: context.model_dir / path for name, path in s.adapters.items()},
                lcm_adapter_path=context.model_dir / s.lcm_adapter if s.lcm_adapter else None,
                batch_invariant=s.batch_invariant,
            )
        )
        self.default_size_px = s.default_size_px or self.engine.native_size_px
        self.manifest = read_archive_manifest(context.model_dir)
        for name in ["base_model", *s.adapters, *(["lcm"] if s.lcm_adapter else [])]:
            kind = "TINY SYNTHETIC (offline stand-in)" if name in s.synthetic else "real"
            logger.info("%s %s: %s weights: %s", self.name, context.model_version, name, kind)
        logger.info("%s: base model %s, dtype %s, device %s", self.name, base, self.engine.torch_dtype, context.device)

    def generation_fields(self, fields: Fields) -> dict:
        """The fields every diffusion model takes -> GenerationJob keyword arguments."""
        s = self.settings
        seed = fields.integer("seed", None, 0, SEED_MAX)
        values = {
            "steps": fields.integer("steps", s.default_steps, *STEPS_RANGE),
            "guidance_scale": fields.number("guidance", s.default_guidance, *GUIDANCE_RANGE),
            "seed": random.randrange(SEED_MAX) if seed is None else seed,
            "width": self._size(fields, "width"),
            "height": self._size(fields, "height"),
            "scheduler": fields.choice("scheduler", self.engine.schedulers, s.default_scheduler),
        }
        return values

    def _size(self, fields: Fields, name: str) -> int:
        s = self.settings
        size_px = fields.integer(name, self.default_size_px, s.min_size_px, s.max_size_px)
        if size_px % 8:
            raise InvalidField(
                f"'{name}' must be a multiple of 8 from {s.min_size_px} to {s.max_size_px}; got {size_px}", name
            )
        return size_px

    def make_job(self, **kwargs) -> GenerationJob:
        """Build and validate a job against this engine: unknown adapters and prompts past
        the text encoder's context are the client's errors (400, 422), never the batch's."""
        try:
            job = GenerationJob(**kwargs)
            self.engine.validate_job(job)
        except PromptTooLongError as error:
            raise PromptTooLong(
                f"'{error.field_name}' is {error.token_count} CLIP tokens; the limit is "
                f"{error.max_tokens} (77 including the start and end tokens)",
                error.field_name,
            ) from None
        except ValueError as error:
            name = str(error).split(" ", 1)[0]
            raise InvalidField(str(error), name) from None
        return job

    def predict(self, requests: list, progress) -> list:
        deadline = time.monotonic() + self.settings.time_budget_s

        def on_step(index: int, step: int, of: int) -> None:
            progress(index, {"step": step, "of": of})
            if time.monotonic() > deadline:
                raise _BudgetSpent

        try:
            generated = self.engine.generate([r.job for r in requests], on_step)
        except _BudgetSpent:
            message = (
                f"generation outlived the {self.settings.time_budget_s:g} s budget; "
                "ask for fewer steps, smaller images or fewer images"
            )
            return [DeadlineExceeded(message, "steps") for _ in requests]
        results = []
        for request, result in zip(requests, generated):
            images = [request.postprocess(im) if request.postprocess else im for im in result.images]
            extra = {"batch_images": result.batch_images}
            if result.nsfw is not None:
                extra["nsfw"] = result.nsfw  # flagged images come back black; say so
            if result.vae_fp32_retries:
                extra["vae_fp32_retries"] = result.vae_fp32_retries
            results.append(ImageResult(images, request.parameters, result.seeds, dict(result.timings_ms), extra))
        return results

    def describe_generation(self) -> dict:
        s = self.settings
        size = {
            "type": "integer",
            "min": s.min_size_px,
            "max": s.max_size_px,
            "multiple_of": 8,
            "default": self.default_size_px,
        }
        return {
            "steps": {"type": "integer", "min": STEPS_RANGE[0], "max": STEPS_RANGE[1], "default": s.default_steps},
            "guidance": {
                "type": "number",
                "min": GUIDANCE_RANGE[0],
                "max": GUIDANCE_RANGE[1],
                "default": s.default_guidance,
            },
            "seed": {"type": "integer", "min": 0, "max": SEED_MAX, "default": "random"},
            "width": size,
            "height": dict(size),
            "scheduler": {
                "type": "choice",
                "choices": list(self.engine.schedulers),
                "default": s.default_scheduler,
                "note": "lcm is the few-step fast mode (4-8 steps, guidance 1-2)",
            },
            **output_field_descriptions(streams=True),
        }

    def describe_common(self) -> dict:
        return {
            "model": self.name,
            "version": self.context.model_version,
            "synthetic_weights": sorted(self.settings.synthetic),
            "max_prompt_tokens": self.engine.max_prompt_tokens,
            "manifest": self.manifest,
        }


class _BudgetSpent(Exception):
    """Raised from the step callback to stop the pipeline mid-run."""


def prompt_field(fields: Fields, name: str, required: bool) -> str:
    text = fields.text(name, None if required else "", PROMPT_MAX_CHARS)
    if required and (text is None or not text.strip()):
        raise InvalidField(f"'{name}' is required: describe the image to make", name)
    return text
