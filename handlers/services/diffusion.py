"""What txt2img and animals share: an SD 1.5 engine with LoRA adapters, the generation fields
(steps, guidance, seed, size, scheduler) and the 422 for prompts past CLIP's 77 tokens."""

import logging
import os
import time
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Optional

from handlers.common import metrics
from handlers.common.errors import DeadlineExceeded, InvalidField, Overloaded, PromptTooLong
from handlers.common.service import ImageResult, OutputOptions, Service, ServiceContext, output_spec
from handlers.common.spec import PREVIEW_FIELD, SEED_FIELD, Field, FieldSpec
from handlers.services.admission import DiffusionAdmission
from handlers.services.base_model_check import check_base_model
from handlers.services.settings import DiffusionServiceSettings, read_archive_manifest
from imagelab.deadline import BudgetSpent, Deadline
from imagelab.diffusion import DiffusionEngine, DiffusionSettings, GenerationJob, PromptTooLongError
from imagelab.diffusion.adapters import ADAPTERS_DIR_ENV, AdapterFolder, OnDemandAdapters
from imagelab.diffusion.jobs import GUIDANCE_RANGE, SIZE_MULTIPLE_PX, STEPS_RANGE
from imagelab.diffusion.preview import fit_to_vae, progress_with_previews
from imagelab.validation import InvalidValue

logger = logging.getLogger(__name__)

RETRY_AFTER_S = 1  # a not-started request waited behind its batch; the next batch may take it
PROMPT_MAX_CHARS = 2000  # far past 77 tokens; the token count decides, this bounds the work
JOB_FIELDS = frozenset(f.name for f in dataclass_fields(GenerationJob))


# The steps and guidance each sampler is offered with (describe's `by_scheduler`, which the
# playground's sliders follow). The request limits stay the core's (STEPS_RANGE,
# GUIDANCE_RANGE), so a script may still ask for 2 DPM++ steps. Classic samplers: the seed's
# panel (20-100 steps, guidance 1-20). LCM: its LoRA is distilled for 2-8 steps at guidance
# 1-2 (Luo et al. 2023, "LCM-LoRA"); its default when the archive's is another sampler.
SAMPLER_STEPS_RANGE = (20, STEPS_RANGE[1])
LCM_STEPS_RANGE = (2, 8)
LCM_GUIDANCE_RANGE = (1.0, 2.0)
LCM_DEFAULTS = {"steps": 4, "guidance": 1.0}


def _size_field(name: str) -> Field:
    return Field(name, "integer", f"Image {name}", multiple_of=SIZE_MULTIPLE_PX, unit="px")


# The fields every diffusion model takes. Step and guidance limits are the core's
# (imagelab.diffusion.jobs); defaults, sizes, schedulers and decoders are bound at setup from
# the archive's DiffusionServiceSettings and the engine.
GENERATION_SPEC = FieldSpec(
    Field("steps", "integer", "Denoising steps", low=STEPS_RANGE[0], high=STEPS_RANGE[1]),
    Field(
        "guidance",
        "number",
        "Classifier-free guidance scale: how closely the image follows the prompt",
        low=GUIDANCE_RANGE[0],
        high=GUIDANCE_RANGE[1],
        core_name="guidance_scale",
    ),
    SEED_FIELD,
    _size_field("width"),
    _size_field("height"),
    Field(
        "scheduler",
        "choice",
        "Sampler",
        extra={
            "note": f"lcm is the few-step fast mode ({LCM_STEPS_RANGE[0]}-{LCM_STEPS_RANGE[1]} steps, "
            f"guidance {LCM_GUIDANCE_RANGE[0]:g}-{LCM_GUIDANCE_RANGE[1]:g})"
        },
    ),
    Field(
        "decoder",
        "choice",
        "Latent decoder",
        extra={"note": "full: the SD VAE; fast: TAESD, several times cheaper, less fine detail"},
    ),
    PREVIEW_FIELD,
    output_spec(streams=True),
)


def scheduler_ranges(schedulers, defaults: dict, archive_defaults: dict) -> dict:
    """{"steps": {scheduler: {min, max, default}}, "guidance": {...}}. `defaults` are the
    served ones (the CPU's LCM on animals), `archive_defaults` those of the classic sampler."""
    ranges = {"steps": {}, "guidance": {}}
    for name in schedulers:
        lcm = name == "lcm"
        chosen = defaults if (defaults["scheduler"] == "lcm") == lcm else LCM_DEFAULTS if lcm else archive_defaults
        for field_name, (low, high) in (
            ("steps", LCM_STEPS_RANGE if lcm else SAMPLER_STEPS_RANGE),
            ("guidance", LCM_GUIDANCE_RANGE if lcm else GUIDANCE_RANGE),
        ):
            default = min(max(chosen[field_name], low), high)
            ranges[field_name][name] = {"min": low, "max": high, "default": default}
    return ranges


def prompt_field(name: str, description: str, required: bool, required_hint: Optional[str] = None) -> Field:
    """A prompt: bounded in characters here, in CLIP tokens by the engine (422)."""
    default = None if required else ""
    return Field(
        name, "text", description, default, required=required, required_hint=required_hint, max_chars=PROMPT_MAX_CHARS
    )


@dataclass
class DiffusionRequest:
    job: GenerationJob
    parameters: dict  # what the client sees echoed back
    output: OutputOptions = field(default_factory=OutputOptions)
    postprocess: Optional[object] = None  # PIL image -> PIL image, e.g. colour adjustments
    preview: bool = False  # live previews in its progress events (with output.stream)


class DiffusionService(Service):
    """Subclasses declare `spec` (their fields and GENERATION_SPEC), decode it and build
    their job with `make_job`."""

    streams = True
    spec = GENERATION_SPEC
    watches_adapters = False  # txt2img: style LoRAs from a watched folder (on_demand_adapters)

    def setup(self, context: ServiceContext) -> None:
        self.context = context
        self.settings = DiffusionServiceSettings.from_config(context.settings)
        s = self.settings
        base = Path(s.base_model)
        base = base if base.is_absolute() else context.model_dir / base
        check_base_model(read_archive_manifest(context.model_dir), base, s.verify_base_model)
        self.engine = DiffusionEngine(
            DiffusionSettings(
                model_dir=base,
                device=context.device,
                dtype=s.dtype,
                adapters={name: context.model_dir / path for name, path in s.adapters.items()},
                lcm_adapter_path=context.model_dir / s.lcm_adapter if s.lcm_adapter else None,
                batch_invariant=s.batch_invariant,
                mixed_style_batches=s.mixed_style_batches,
                fast_decoder_dir=context.model_dir / s.fast_decoder if s.fast_decoder else None,
                compile_unet=s.compile_unet,
            ),
            self.on_demand_adapters(context.model_name, base),
        )
        self.admission = DiffusionAdmission(self.engine, s.time_budget_s, s.min_size_px, s.cost_rates)
        started_s = time.perf_counter()
        self.preview_projection = fit_to_vae(self.engine.decoders)  # live previews (preview.py)
        logger.info(
            "%s: preview projection fitted to the VAE in %.0f ms (rms error %.3f)",
            self.name,
            (time.perf_counter() - started_s) * 1e3,
            self.preview_projection.rms_error,
        )
        self.admission.calibrate()
        self.default_size_px = s.default_size_px or self.engine.native_size_px
        size = {"low": s.min_size_px, "high": s.max_size_px, "default": self.default_size_px}
        defaults = s.defaults_for(context.device, self.engine.schedulers)  # animals: LCM on a CPU
        archive_defaults = {"steps": s.default_steps, "guidance": s.default_guidance}
        ranges = scheduler_ranges(self.engine.schedulers, defaults, archive_defaults)
        self.spec = self.spec.bind(
            steps={
                "default": defaults["steps"],
                "extra": {**self.spec["steps"].extra, "by_scheduler": ranges["steps"]},
            },
            guidance={
                "default": defaults["guidance"],
                "extra": {**self.spec["guidance"].extra, "by_scheduler": ranges["guidance"]},
            },
            width=size,
            height=size,
            scheduler={"choices": self.engine.schedulers, "default": defaults["scheduler"]},
            decoder={"choices": self.engine.decoders.names, "default": s.default_decoder},
        )
        self.manifest = read_archive_manifest(context.model_dir)
        for name in ["base_model", *s.adapters, *(["lcm"] if s.lcm_adapter else [])]:
            kind = "TINY SYNTHETIC (offline stand-in)" if name in s.synthetic else "real"
            logger.info("%s %s: %s weights: %s", self.name, context.model_version, name, kind)
        logger.info("%s: base model %s, dtype %s, device %s", self.name, base, self.engine.torch_dtype, context.device)

    def on_demand_adapters(self, model_name: str, base: Path) -> Optional[OnDemandAdapters]:
        """The watched `{folder}/{model}/` of this model, if it watches one and a folder is set."""
        root = os.environ.get(ADAPTERS_DIR_ENV) or self.settings.adapters_folder
        if not self.watches_adapters or not root:
            return None
        s = self.settings
        max_bytes = int(s.adapter_cache_max_mb * 1024 * 1024)
        folder = AdapterFolder(Path(root) / model_name, base / "unet", s.adapter_poll_s, max_bytes)
        logger.info("%s: style LoRAs on demand from %s", self.name, folder.root)
        return OnDemandAdapters(folder, s.adapter_cache_max_count, max_bytes)

    def take_metric_counts(self) -> dict:
        """Adapter loads, hits and evictions since the last call (metric name -> count)."""
        on_demand = self.engine.on_demand
        if on_demand is None:
            return {}
        counts, on_demand.counts = on_demand.counts, type(on_demand.counts)()
        return {
            metrics.ADAPTER_LOADS: counts.loads,
            metrics.ADAPTER_HITS: counts.hits,
            metrics.ADAPTER_EVICTIONS: counts.evictions,
        }

    def make_job(self, values: dict, **fixed) -> GenerationJob:
        """The job of a decoded request (`values` by public field name, `fixed` by the job's
        own names), validated against this engine: unknown adapters and prompts past the text
        encoder's context are the client's errors (400, 422), never the batch's."""
        kwargs = {k: v for k, v in {**self.spec.core_values(values), **fixed}.items() if k in JOB_FIELDS}
        try:
            job = GenerationJob(**kwargs)
            self.engine.validate_job(job)
        except PromptTooLongError as error:
            raise PromptTooLong(
                f"'{error.field_name}' is {error.token_count} CLIP tokens; the limit is "
                f"{error.max_tokens} (77 including the start and end tokens)",
                error.field_name,
            ) from None
        except InvalidValue as error:
            raise self._invalid_field(error) from None
        self.admission.check(job)  # 422 TooExpensive before any work
        return job

    def _invalid_field(self, error: InvalidValue) -> InvalidField:
        return InvalidField(str(error), self.spec.field_for(error.field_name) or error.field_name)

    def predict(self, requests: list, progress) -> list:
        """What fits the time budget runs (in batch order); the rest is 503 (admission.py)."""
        work_of = lambda request: self.admission.work_of(request.job)  # noqa: E731
        return self.admission.run_within_budget(requests, work_of, self._generate, progress)

    def _generate(self, requests: list, progress) -> list:
        """Per request its ImageResult or the error that failed it: a group that outlives the
        budget is 504, one that never got to start 503, any other failure stays with its
        group or job (the runner maps exceptions to 500/507 and logs them)."""
        deadline = Deadline.after(self.settings.time_budget_s)

        def on_step(index: int, step: int, of: int) -> None:
            progress(index, {"step": step, "of": of})

        wanted = {index for index, r in enumerate(requests) if r.preview and r.output.stream}
        on_latents = None
        if wanted:  # without previews the engine never touches the latents
            sides = [max(r.job.width, r.job.height) for r in requests]
            on_latents = progress_with_previews(self.preview_projection, progress, wanted, sides.__getitem__)
        generated = self.engine.generate_each([r.job for r in requests], on_step, deadline, on_latents=on_latents)
        self.admission.observe([r.job for r in requests], generated)
        return [self._result(request, outcome) for request, outcome in zip(requests, generated)]

    def _result(self, request: DiffusionRequest, outcome):
        if isinstance(outcome, BudgetSpent):
            return _budget_error(outcome)
        if isinstance(outcome, InvalidValue):  # e.g. its folder style was removed since decode
            return self._invalid_field(outcome)
        if isinstance(outcome, Exception):
            return outcome
        try:
            images = [request.postprocess(im) if request.postprocess else im for im in outcome.images]
        except Exception as error:  # this request only
            return error
        extra = {"batch_images": outcome.batch_images}
        if outcome.nsfw is not None:
            extra["nsfw"] = outcome.nsfw  # flagged images come back black; say so
        if outcome.vae_fp32_retries:
            extra["vae_fp32_retries"] = outcome.vae_fp32_retries
        if outcome.batch_styles:  # a mixed-style call: its styles and UNet calls (mixed_lora.py)
            extra.update(batch_styles=outcome.batch_styles, unet_calls=outcome.unet_calls)
        return ImageResult(images, request.parameters, outcome.seeds, dict(outcome.timings_ms), extra)

    def describe_common(self) -> dict:
        return {
            "model": self.name,
            "version": self.context.model_version,
            "synthetic_weights": sorted(self.settings.synthetic),
            # Where and in what precision this worker runs (read-only in the playground).
            "device": self.context.device,
            "dtype": str(self.engine.torch_dtype).removeprefix("torch."),
            "max_prompt_tokens": self.engine.max_prompt_tokens,
            "speed": {**self.admission.describe(), "unet_path": self.engine.fast_path.describe()},
            "manifest": self.manifest,
        }


def _budget_error(spent: BudgetSpent):
    """A job the batch's time budget cut short: 504 if it had started, else 503 (retry)."""
    if spent.started:
        return DeadlineExceeded(
            f"generation outlived the {spent.budget_s:g} s budget ({spent.stage}); "
            "ask for fewer steps, smaller images or fewer images",
            "steps",
        )
    return Overloaded(
        f"the batch spent its {spent.budget_s:g} s budget before this request could start; retry later",
        retry_after_s=RETRY_AFTER_S,
    )
