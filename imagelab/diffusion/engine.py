"""Stable Diffusion 1.5 text-to-image with per-request LoRA styles, server-agnostic.

One `DiffusionEngine` holds one diffusers `StableDiffusionPipeline` loaded from a local folder,
with every style LoRA (and optionally the LCM-LoRA) loaded once as a named PEFT adapter.
`generate` groups jobs that can share a pipeline call and runs each group as one call.
"""

import contextlib
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

# Belt and braces: huggingface_hub reads this once, at its import; what guarantees no hub
# access is local_files_only=True on every load below.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from diffusers import (  # noqa: E402
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    LCMScheduler,
    StableDiffusionPipeline,
)
from peft.tuners.lora import LoraLayer  # noqa: E402
from PIL import Image  # noqa: E402

from imagelab.cancellation import JobCancelled  # noqa: E402
from imagelab.deadline import Deadline  # noqa: E402
from imagelab.diffusion.adapters import OnDemandAdapters  # noqa: E402
from imagelab.diffusion.batching import per_span_unet_calls  # noqa: E402
from imagelab.diffusion.decoders import Decoders  # noqa: E402
from imagelab.diffusion.fast_path import UNetFastPath  # noqa: E402
from imagelab.diffusion.fuse import AdapterFuser  # noqa: E402
from imagelab.diffusion.jobs import (  # noqa: E402
    LCM_ADAPTER_NAME,
    NO_STYLE,
    DiffusionSettings,
    GenerationJob,
    GenerationResult,
    GroupKey,
    PromptTooLongError,
    group_jobs,
    group_key,
)
from imagelab.diffusion.mixed_calls import plan_mixed_calls  # noqa: E402
from imagelab.diffusion.mixed_lora import AdapterSet, MixedLoraRows  # noqa: E402
from imagelab.validation import check_choice  # noqa: E402

SCHEDULERS = {
    "ddim": DDIMScheduler,
    "dpmpp": DPMSolverMultistepScheduler,  # DPM-Solver++(2M), Lu et al. 2022
    "euler_a": EulerAncestralDiscreteScheduler,
    "lcm": LCMScheduler,  # few-step sampling with the LCM-LoRA (Luo et al. 2023)
}

OnStep = Callable[[int, int, int], None]  # (job_index, step 1..of, of)
# The same, plus that job's rows of the latents after the step, (k, C, h, w): a view, not a copy.
OnLatents = Callable[[int, int, int, torch.Tensor], None]


def load_pipeline(model_dir: Path, device: str, torch_dtype: torch.dtype) -> StableDiffusionPipeline:
    """Load a diffusers SD 1.5 folder from disk only: no hub access, safetensors weights only."""
    model_dir = Path(model_dir)
    if not (model_dir / "model_index.json").is_file():
        raise FileNotFoundError(f"{model_dir} is not a diffusers folder (no model_index.json)")
    optional = {}
    index = json.loads((model_dir / "model_index.json").read_text())
    for component in ("safety_checker", "feature_extractor"):
        # SD 1.5's index names a safety checker; a folder fetched without it still loads,
        # and results then say nsfw=None (not checked) rather than failing to start.
        if index.get(component, [None])[0] is not None and not (model_dir / component).is_dir():
            optional[component] = None
    if optional:
        optional["requires_safety_checker"] = False
    # A folder fetched as the fp16 variant holds only *.fp16.safetensors weight files.
    unet_dir = model_dir / "unet"
    if unet_dir.is_dir() and not any(unet_dir.glob("*[!6].safetensors")) and any(unet_dir.glob("*.fp16.safetensors")):
        optional["variant"] = "fp16"
    pipe = StableDiffusionPipeline.from_pretrained(
        str(model_dir), local_files_only=True, use_safetensors=True, dtype=torch_dtype, **optional
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def load_lora_adapter(pipe: StableDiffusionPipeline, path: Path, adapter_name: str) -> None:
    """Load a diffusers- or kohya-layout .safetensors LoRA as a named adapter (see lora.py)."""
    path = Path(path)
    if path.suffix != ".safetensors" or not path.is_file():
        raise FileNotFoundError(f"LoRA {adapter_name!r}: {path} is not a .safetensors file")
    pipe.load_lora_weights(
        str(path.parent),
        weight_name=path.name,
        adapter_name=adapter_name,
        use_safetensors=True,
        local_files_only=True,
    )


class DiffusionEngine:
    def __init__(self, settings: DiffusionSettings, on_demand: OnDemandAdapters | None = None):
        self.settings = settings
        self.torch_dtype = settings.torch_dtype
        self.pipe = load_pipeline(settings.model_dir, settings.device, self.torch_dtype)
        self._scheduler_config = dict(self.pipe.scheduler.config)
        for name, path in settings.adapters.items():
            load_lora_adapter(self.pipe, path, name)
        if settings.lcm_adapter_path is not None:
            load_lora_adapter(self.pipe, settings.lcm_adapter_path, LCM_ADAPTER_NAME)
        self._has_adapters = bool(settings.adapters) or settings.lcm_adapter_path is not None or on_demand is not None
        # Styles from a watched folder (adapters.py), loaded and deleted between groups.
        self.on_demand = on_demand
        if on_demand is not None:
            on_demand.attach(self._load_on_demand, self._delete_on_demand)
        self.decoders = Decoders(self.pipe.vae, self.pipe.vae_scale_factor, settings.fast_decoder_dir)
        # Active adapters folded into the UNet's weights per group (fuse.py), not run beside them.
        self.fuser = AdapterFuser(self.pipe.unet) if settings.fuse_lora and self._has_adapters else None
        self.fast_path = UNetFastPath(
            self.pipe.unet,
            settings.device,
            compile_unet=settings.compile_unet,
            weights_change=self._has_adapters,
            bucket_px=(self.native_size_px,),
            vae_scale_factor=self.pipe.vae_scale_factor,
        )

    @property
    def styles(self) -> tuple[str, ...]:
        """`none`, the archived styles, then the folder's current ones (an archived name wins)."""
        folder = () if self.on_demand is None else self.on_demand.usable
        return (NO_STYLE, *self.settings.adapters, *(n for n in folder if n not in self.settings.adapters))

    def _load_on_demand(self, peft_name: str, path: Path) -> None:
        self._change_adapters(lambda: load_lora_adapter(self.pipe, path, peft_name))

    def _delete_on_demand(self, peft_names: list[str]) -> None:
        self._change_adapters(lambda: self.pipe.delete_adapters(peft_names))

    def _change_adapters(self, change: Callable[[], None]) -> None:
        """Load or delete adapters with the base weights in place, then re-read the UNet's
        adapter layers: a new LoRA may wrap layers no earlier one did."""
        if self.fuser is not None:
            self.fuser.restore()
        change()
        if self.fuser is not None:
            self.fuser = AdapterFuser(self.pipe.unet)

    @property
    def schedulers(self) -> tuple[str, ...]:
        names = tuple(SCHEDULERS)
        return names if self.settings.lcm_adapter_path is not None else tuple(n for n in names if n != "lcm")

    @property
    def max_prompt_tokens(self) -> int:
        return self.pipe.tokenizer.model_max_length

    @property
    def native_size_px(self) -> int:
        """The image side the UNet was trained at: 512 for SD 1.5, 64 for the tiny model."""
        return self.pipe.unet.config.sample_size * self.pipe.vae_scale_factor

    @property
    def has_safety_checker(self) -> bool:
        return self.pipe.safety_checker is not None

    def count_tokens(self, prompt: str) -> int:
        """CLIP tokens of `prompt` including BOS and EOS, untruncated."""
        return len(self.pipe.tokenizer(prompt, truncation=False).input_ids)

    def validate_job(self, job: GenerationJob) -> None:
        """Raise ValueError (PromptTooLongError for prompts) if this engine cannot run `job`."""
        check_choice("style", job.style, self.styles)  # InvalidValue names the field
        check_choice("scheduler", job.scheduler, self.schedulers)
        for field_name in ("prompt", "negative_prompt"):
            token_count = self.count_tokens(getattr(job, field_name))
            if token_count > self.max_prompt_tokens:
                raise PromptTooLongError(field_name, token_count, self.max_prompt_tokens)

    def generate(
        self,
        jobs: Sequence[GenerationJob],
        on_step: OnStep | None = None,
        deadline: Deadline | None = None,
        *,
        on_latents: OnLatents | None = None,
    ) -> list[GenerationResult]:
        """Run `jobs` and return one result per job, in order; raise if any job fails.

        Every job is validated before any runs. For a server, where one job's failure must not
        cost its neighbours their results, use `generate_each`.
        """
        jobs = list(jobs)
        for index, job in enumerate(jobs):
            self._validate_in_batch(job, index, len(jobs))
        outcomes = self.generate_each(jobs, on_step, deadline, on_latents=on_latents)
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                raise outcome
        return outcomes

    def generate_each(
        self,
        jobs: Sequence[GenerationJob],
        on_step: OnStep | None = None,
        deadline: Deadline | None = None,
        *,
        on_latents: OnLatents | None = None,
    ) -> list[GenerationResult | Exception]:
        """Run `jobs`; per job, in order, its result or the exception that failed it.

        Jobs that agree on style and scale, steps, size, scheduler and guidance run as one
        pipeline call with one torch.Generator per image; each job still gets exactly the
        image it gets alone (batching.py). `on_step(job_index, step, of)` is called after
        every denoising step for each job of the running group, steps counted from 1;
        `on_latents(job_index, step, of, latents)`, when given, is called instead with that
        job's rows of the latents (live previews, preview.py); without it no latent is touched.

        Failures stay where they happen: an invalid job fails alone (ValueError), an exception
        in a group's text encoding or denoising fails that group, one in a job's decode fails
        that job. `deadline` is checked before each group after the first (BudgetSpent with
        started=False), after each step and before each job's decode (started=True).
        Either callback may raise JobCancelled (imagelab/cancellation.py) to stop its job: the
        job's outcome is that exception, and a group whose jobs are all cancelled stops at once.
        """
        jobs = list(jobs)
        if self.on_demand is not None:
            self.on_demand.sync()  # removed and replaced files leave the model before any group
        outcomes: list[GenerationResult | Exception | None] = [None] * len(jobs)
        runnable = []
        for index, job in enumerate(jobs):
            try:
                self._validate_in_batch(job, index, len(jobs))
                runnable.append(index)
            except ValueError as error:
                outcomes[index] = error
        mix_styles = self.settings.mixes_styles and self._has_adapters
        groups = group_jobs([jobs[i] for i in runnable], mix_styles)
        for position, members in enumerate(groups.values()):
            indices = [runnable[m] for m in members]
            try:
                if deadline is not None and position > 0:
                    # The first group always runs: the budget bounds how long a batch goes
                    # on, while refusing work that cannot fit is admission's job (cost.py).
                    deadline.check(f"group {position + 1} of {len(groups)}", started=False)
                run = self._run_mixed_styles if mix_styles else self._run_group
                group_outcomes = run(indices, [jobs[i] for i in indices], on_step, deadline, on_latents)
            except Exception as error:  # this group only; the next may still run
                group_outcomes = [error] * len(indices)
            for index, outcome in zip(indices, group_outcomes):
                outcomes[index] = outcome
        return outcomes

    def _validate_in_batch(self, job: GenerationJob, index: int, count: int) -> None:
        try:
            self.validate_job(job)
        except ValueError as error:
            if f"in job {index} of {count}" not in getattr(error, "__notes__", ()):
                error.add_note(f"in job {index} of {count}")
            raise

    def _run_mixed_styles(
        self,
        indices: list[int],
        jobs: list[GenerationJob],
        on_step: OnStep | None,
        deadline: Deadline | None,
        on_latents: OnLatents | None = None,
    ) -> list[GenerationResult | Exception]:
        """Jobs that may differ in style and scale: one pipeline call, each UNet row with its
        job's adapters (mixed_lora.py), or the fused path when they all want the same ones
        (mixed_calls.py). A job whose adapter cannot be had (a folder file gone) fails alone."""
        outcomes: list[GenerationResult | Exception | None] = [None] * len(jobs)
        wanted: dict[int, AdapterSet] = {}
        for position, job in enumerate(jobs):
            try:
                wanted[position] = self._adapter_set(job.active_style, job.style_scale, job.scheduler)
            except Exception as error:  # this job only
                outcomes[position] = error
        if not wanted:
            return outcomes
        loaded = set().union(*self.pipe.get_list_adapters().values())
        for part, per_row in plan_mixed_calls(wanted, loaded):
            part_adapters = [wanted[p] for p in part] if per_row else None
            try:
                part_outcomes = self._run_group(
                    [indices[p] for p in part], [jobs[p] for p in part], on_step, deadline, on_latents, part_adapters
                )
            except Exception as error:  # this call only
                part_outcomes = [error] * len(part)
            for p, outcome in zip(part, part_outcomes):
                outcomes[p] = outcome
        return outcomes

    def _adapter_set(self, style: str, style_scale: float, scheduler: str) -> AdapterSet:
        """The PEFT adapters and weights of a style at a scale under a scheduler."""
        adapters = []
        if style != NO_STYLE:
            archived = style in self.settings.adapters
            # A folder style is loaded now if it is not yet: between pipeline calls.
            adapters.append((style if archived else self.on_demand.ensure(style), float(style_scale)))
        if scheduler == "lcm":
            adapters.append((LCM_ADAPTER_NAME, 1.0))
        return tuple(adapters)

    def _set_adapters(self, adapters: AdapterSet) -> None:
        """Activate `adapters` on the UNet's and text encoder's PEFT layers (unfused)."""
        if adapters:
            self.pipe.enable_lora()
            self.pipe.set_adapters([n for n, _ in adapters], adapter_weights=[w for _, w in adapters])
        else:
            self.pipe.disable_lora()  # the exact base model, not a zero-weighted sum

    def _activate_adapters(self, key: GroupKey) -> float:
        """Set the group's adapters; returns the seconds a fused-weights swap took."""
        if not self._has_adapters:
            return 0.0
        adapters = self._adapter_set(key.style, key.style_scale, key.scheduler)
        self._set_adapters(adapters)
        if adapters:
            names, weights = zip(*adapters)
            return self.fuser.fuse(names, weights) if self.fuser else 0.0
        return self.fuser.restore() if self.fuser else 0.0

    @contextlib.contextmanager
    def _unet_calls(self, image_spans: list[tuple[int, int]] | None, mixed: MixedLoraRows | None):
        """How the pipeline's UNet calls run: per image span (batch invariance, batching.py)
        or once for the batch; with `mixed`, each row with its own LoRAs on the base weights."""
        if mixed is None:
            with per_span_unet_calls(self.pipe.unet, image_spans) if image_spans else contextlib.nullcontext():
                yield
            return
        self.pipe.unet.disable_lora()  # the PEFT layers give the base output; mixed adds the rows' deltas
        spans = image_spans or [(0, mixed.num_images)]
        with mixed.active(), per_span_unet_calls(self.pipe.unet, spans, mixed.select_rows):
            yield

    def _encode_prompts(
        self, jobs: list[GenerationJob], guided: bool, job_adapters: list[AdapterSet] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per job, so no prompt's embedding depends on its neighbours' (batching.py); with
        `job_adapters` (a mixed-style call) each under its own style's text-encoder LoRA."""
        positive, negative = [], []
        text_lora = job_adapters is not None and any(isinstance(m, LoraLayer) for m in self.pipe.text_encoder.modules())
        for position, job in enumerate(jobs):
            if text_lora:
                self._set_adapters(job_adapters[position])
            prompt_embeds, negative_embeds = self.pipe.encode_prompt(
                job.prompt, self.pipe.device, job.num_images, guided, job.negative_prompt
            )
            positive.append(prompt_embeds)
            negative.append(negative_embeds)
        return torch.cat(positive), torch.cat(negative) if guided else None

    def _run_group(
        self,
        indices: list[int],
        jobs: list[GenerationJob],
        on_step: OnStep | None,
        deadline: Deadline | None,
        on_latents: OnLatents | None = None,
        job_adapters: list[AdapterSet] | None = None,
    ) -> list[GenerationResult | Exception]:
        """One pipeline call for jobs of one GroupKey; decodes per job, each failing alone.
        `job_adapters` (a mixed-style call): each job's adapters, applied to its UNet rows."""
        key = group_key(jobs[0])
        mixed = None
        if job_adapters is None:
            swap_s = self._activate_adapters(key)
        else:  # unfused: the base weights while rows mix
            swap_s = self.fuser.restore() if self.fuser else 0.0
            image_adapters = [adapters for job, adapters in zip(jobs, job_adapters) for _ in job.seeds]
            mixed = MixedLoraRows(self.pipe.unet, image_adapters)
        # Between groups: the compiled UNet once built, only with plain layers (fused or no LoRA).
        self.fast_path.begin_group(plain=mixed is None and (self.fuser is not None or not self._has_adapters))
        start_s = time.perf_counter()
        self.pipe.scheduler = SCHEDULERS[key.scheduler].from_config(self._scheduler_config)
        guided = key.guidance_scale > 1.0  # diffusers' do_classifier_free_guidance
        with torch.inference_mode():
            prompt_embeds, negative_embeds = self._encode_prompts(jobs, guided, job_adapters)
        encoded_s = time.perf_counter()

        spans, stop = [], 0
        for job in jobs:
            spans.append((stop, stop + job.num_images))
            stop += job.num_images
        # CPU generators: the same seed gives the same starting noise on every device.
        generators = [torch.Generator("cpu").manual_seed(seed) for job in jobs for seed in job.seeds]

        # A job whose callback raises JobCancelled gets no more callbacks. Its rows cannot leave
        # the running UNet call, so while a neighbour lives they are denoised on and dropped
        # (answered JobCancelled, not decoded); once every job is cancelled the call stops.
        cancelled: dict[int, JobCancelled] = {}

        def step_callback(pipe, step_index, timestep, callback_kwargs):
            step, of = step_index + 1, pipe.num_timesteps
            for job_index, (a, b) in zip(indices, spans):
                if job_index in cancelled:
                    continue
                try:
                    if on_latents is not None:
                        # diffusers passes the latents before the guidance doubling: one row per image.
                        on_latents(job_index, step, of, callback_kwargs["latents"][a:b])
                    elif on_step is not None:
                        on_step(job_index, step, of)
                except JobCancelled as stop:
                    cancelled[job_index] = stop
            if len(cancelled) == len(indices):
                raise next(iter(cancelled.values()))  # the whole group: generate_each answers it
            if deadline is not None:
                done = step_index + 1
                deadline.check(f"step {done + 1} of {pipe.num_timesteps}" if done < pipe.num_timesteps else "decoding")
            return {}

        # One UNet call per image, so no image depends on what shares the call (batching.py).
        invariant = self.settings.batch_invariant and stop > 1
        image_spans = [(row, row + 1) for row in range(stop)]
        with self._unet_calls(image_spans if invariant else None, mixed):
            latents = self.pipe(
                prompt_embeds=prompt_embeds,
                negative_prompt_embeds=negative_embeds,
                num_inference_steps=key.steps,
                guidance_scale=key.guidance_scale,
                width=key.width,
                height=key.height,
                generator=generators,
                output_type="latent",
                callback_on_step_end=step_callback,
            ).images  # (images, C_latent, H / f, W / f)
        denoised_s = time.perf_counter()

        outcomes = []
        for job_index, job, (a, b) in zip(indices, jobs, spans):
            if job_index in cancelled:
                outcomes.append(cancelled[job_index])
                continue
            try:
                if deadline is not None:
                    deadline.check("decoding")
                with torch.inference_mode():
                    decoded = [
                        self._decode_row(latents[row : row + 1], prompt_embeds.dtype, key.decoder)
                        for row in range(a, b)
                    ]
            except Exception as error:  # this job only: its neighbours' images are fine
                outcomes.append(error)
                continue
            done_s = time.perf_counter()
            timings_ms = {
                "adapter_swap": swap_s * 1e3,
                "text_encode": (encoded_s - start_s) * 1e3,
                "denoise": (denoised_s - encoded_s) * 1e3,
                "decode": (done_s - denoised_s) * 1e3,  # this job's and its predecessors' in the group
                "total": (done_s - start_s) * 1e3,
            }
            outcomes.append(
                GenerationResult(
                    images=[image for image, _, _ in decoded],
                    seeds=job.seeds,
                    nsfw=[flagged for _, flagged, _ in decoded] if self.has_safety_checker else None,
                    timings_ms=timings_ms,
                    batch_images=stop,
                    vae_fp32_retries=sum(retried for _, _, retried in decoded),
                    batch_styles=mixed.distinct if mixed else 0,
                    unet_calls=mixed.unet_calls if mixed else 0,
                )
            )
        return outcomes

    def _decode_row(
        self, latents: torch.Tensor, embeds_dtype: torch.dtype, decoder: str
    ) -> tuple[Image.Image, bool, int]:
        """One latent (1, C, h, w) -> (PIL image, nsfw flag, 1 if redone in float32 else 0)."""
        image, retried = self.decoders.decode_safely(latents, decoder)
        image, flags = self.pipe.run_safety_checker(image, self.pipe.device, embeds_dtype)
        flagged = bool(flags[0]) if flags is not None else False
        [pil] = self.pipe.image_processor.postprocess(image, output_type="pil", do_denormalize=[not flagged])
        return pil, flagged, int(retried)
