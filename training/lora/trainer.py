"""LoRA fine-tuning of the SD 1.5 UNet's attention projections (Hu et al. 2021) with peft.

The objective is the standard epsilon-prediction MSE of Ho et al. 2020 with the model folder's
own noise schedule (a DDPMScheduler built from scheduler/scheduler_config.json, as diffusers'
train_text_to_image_lora.py does): encode an image to a latent, add noise at a uniformly drawn
timestep, and regress the noise from the noisy latent and the caption's text embedding. Only
the LoRA factors train; the VAE, text encoder and base UNet weights stay frozen.
"""

import contextlib
from pathlib import Path
from typing import NamedTuple

import torch
from diffusers import (
    AutoencoderKL,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from torch.nn import functional as F
from transformers import CLIPTextModel, CLIPTokenizer

from imagelab.devices import cpu_supports_bf16
from training.lora.config import TARGET_MODULES, LoraTrainConfig
from training.schedule import make_lr_scheduler


class Components(NamedTuple):
    unet: UNet2DConditionModel
    vae: AutoencoderKL
    text_encoder: CLIPTextModel
    tokenizer: CLIPTokenizer
    noise_scheduler: DDPMScheduler


class StepStats(NamedTuple):
    loss: float  # mean over the step's micro-batches
    grad_norm: float  # total L2 norm of the LoRA gradients before clipping
    lr: float  # the learning rate this step used


def load_components(model_dir: Path, device: str = "cpu") -> Components:
    """The pipeline's parts from a local diffusers folder; safetensors only, no hub."""
    model_dir = Path(model_dir)
    if not (model_dir / "model_index.json").is_file():
        raise FileNotFoundError(f"{model_dir} is not a diffusers folder (no model_index.json)")
    local = dict(local_files_only=True)
    unet = UNet2DConditionModel.from_pretrained(model_dir, subfolder="unet", use_safetensors=True, **local)
    vae = AutoencoderKL.from_pretrained(model_dir, subfolder="vae", use_safetensors=True, **local)
    text_encoder = CLIPTextModel.from_pretrained(model_dir / "text_encoder", use_safetensors=True, **local)
    tokenizer = CLIPTokenizer.from_pretrained(model_dir / "tokenizer", **local)
    noise_scheduler = DDPMScheduler.from_pretrained(model_dir, subfolder="scheduler", **local)
    for module in (unet, vae, text_encoder):
        module.requires_grad_(False).to(device)
    return Components(unet, vae.eval(), text_encoder.eval(), tokenizer, noise_scheduler)


def resolve_precision(mixed_precision: str, device: str) -> str:
    """`auto`: fp16 on CUDA, bf16 on CPUs with native bf16 (imagelab.devices), else none."""
    if mixed_precision != "auto":
        return mixed_precision
    if device.startswith("cuda"):
        return "fp16"
    return "bf16" if cpu_supports_bf16() else "no"


def sample_latents(posteriors: torch.Tensor, generator: torch.Generator, scaling_factor: float) -> torch.Tensor:
    """(B, 2C, h, w) posterior mean and log-variance -> (B, C, h, w) scaled latent samples,
    as diffusers' DiagonalGaussianDistribution.sample, with an explicit generator."""
    mean, logvar = posteriors.chunk(2, dim=1)
    std = torch.exp(0.5 * logvar.clamp(-30.0, 20.0))
    noise = torch.randn(mean.shape, generator=generator)
    return (mean + std * noise) * scaling_factor


class LoraTrainer:
    def __init__(self, config: LoraTrainConfig, components: Components, total_steps: int):
        self.config = config
        self.c = components
        self.device = config.device
        self.precision = resolve_precision(config.mixed_precision, config.device)
        torch.manual_seed(config.seed)  # peft draws the initial lora_A from torch's global RNG
        components.unet.add_adapter(
            LoraConfig(
                r=config.rank,
                lora_alpha=config.lora_alpha,
                lora_dropout=config.lora_dropout,
                init_lora_weights=True if config.init_lora_weights == "default" else config.init_lora_weights,
                target_modules=list(TARGET_MODULES),
            )
        )
        self.params = {n: p for n, p in components.unet.named_parameters() if p.requires_grad}
        if not self.params:
            raise ValueError("the LoRA config matched no UNet module")
        self.optimizer = torch.optim.AdamW(
            self.params.values(), lr=config.learning_rate, weight_decay=config.weight_decay
        )
        self.lr_scheduler = make_lr_scheduler(self.optimizer, config.lr_schedule, config.warmup_steps, total_steps)
        device_type = "cuda" if self.device.startswith("cuda") else "cpu"
        self.scaler = torch.amp.GradScaler(device_type, enabled=self.precision == "fp16")
        self.generator = torch.Generator().manual_seed(config.seed)
        self._prompt_embeds: dict[str, torch.Tensor] = {}

    def autocast(self):
        if self.precision == "no":
            return contextlib.nullcontext()
        device_type = "cuda" if self.device.startswith("cuda") else "cpu"
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(device_type=device_type, dtype=dtype)

    @torch.no_grad()
    def encode_posterior(self, pixels: torch.Tensor) -> torch.Tensor:
        """(3, R, R) in [-1, 1] -> (2C, R/f, R/f), the VAE posterior's mean and log-variance."""
        return self.c.vae.encode(pixels[None].to(self.device)).latent_dist.parameters[0]

    @torch.no_grad()
    def encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        """(B, 77, D) text embeddings; each prompt is encoded once (the encoder is frozen)."""
        for prompt in set(prompts) - set(self._prompt_embeds):
            ids = self.c.tokenizer(
                prompt,
                padding="max_length",
                truncation=True,
                max_length=self.c.tokenizer.model_max_length,
                return_tensors="pt",
            ).input_ids
            self._prompt_embeds[prompt] = self.c.text_encoder(ids.to(self.device))[0][0]
        return torch.stack([self._prompt_embeds[p] for p in prompts])

    def loss(self, posteriors: torch.Tensor, prompts: list[str], generator: torch.Generator) -> torch.Tensor:
        """Epsilon-prediction MSE for one micro-batch; every random draw comes from `generator`."""
        latents = sample_latents(posteriors, generator, self.c.vae.config.scaling_factor)
        noise = torch.randn(latents.shape, generator=generator)
        timesteps = torch.randint(
            0, self.c.noise_scheduler.config.num_train_timesteps, (latents.shape[0],), generator=generator
        )
        latents, noise, timesteps = latents.to(self.device), noise.to(self.device), timesteps.to(self.device)
        noisy = self.c.noise_scheduler.add_noise(latents, noise, timesteps)
        if self.c.noise_scheduler.config.prediction_type == "v_prediction":
            target = self.c.noise_scheduler.get_velocity(latents, noise, timesteps)
        else:
            target = noise
        embeds = self.encode_prompts(prompts)
        with self.autocast():
            prediction = self.c.unet(noisy, timesteps, embeds, return_dict=False)[0]
        return F.mse_loss(prediction.float(), target.float())

    def step(
        self, micro_batches: list[tuple[torch.Tensor, list[str]]], generator: torch.Generator | None = None
    ) -> StepStats:
        """One optimizer step over `micro_batches` (gradient accumulation), with clipping."""
        generator = generator or self.generator
        self.c.unet.train()
        losses = []
        for posteriors, prompts in micro_batches:
            loss = self.loss(posteriors, prompts, generator)
            self.scaler.scale(loss / len(micro_batches)).backward()
            losses.append(float(loss.detach()))
        self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params.values(), self.config.max_grad_norm)
        lr = self.optimizer.param_groups[0]["lr"]
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.lr_scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return StepStats(sum(losses) / len(losses), float(grad_norm), lr)

    @torch.no_grad()
    def validation_loss(self, batches: list[tuple[torch.Tensor, list[str]]]) -> float | None:
        """The same noise and timesteps every epoch (a generator seeded from the run's seed),
        so epochs compare; torch's global RNG is left as it was."""
        if not batches:
            return None
        generator = torch.Generator().manual_seed(self.config.seed + 1)
        self.c.unet.eval()
        with torch.random.fork_rng(devices=[]):
            losses = [float(self.loss(p, prompts, generator)) * len(prompts) for p, prompts in batches]
        self.c.unet.train()
        return sum(losses) / sum(len(prompts) for _, prompts in batches)

    @torch.no_grad()
    def generate(self, prompts: list[str], size_px: int, steps: int, guidance: float, seed: int) -> list:
        """Validation pictures with the LoRA applied, one seeded generator per image."""
        pipe = StableDiffusionPipeline(
            vae=self.c.vae,
            text_encoder=self.c.text_encoder,
            tokenizer=self.c.tokenizer,
            unet=self.c.unet,
            scheduler=DPMSolverMultistepScheduler.from_config(self.c.noise_scheduler.config),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        pipe.set_progress_bar_config(disable=True)
        self.c.unet.eval()
        generators = [torch.Generator().manual_seed(seed + i) for i in range(len(prompts))]
        with torch.random.fork_rng(devices=[]), self.autocast():
            images = pipe(
                prompt=list(prompts),
                height=size_px,
                width=size_px,
                num_inference_steps=steps,
                guidance_scale=guidance,
                generator=generators,
            ).images
        self.c.unet.train()
        return images

    def lora_weights(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """UNet module name -> (lora_down (r, in), lora_up (out, r)), for imagelab's save_lora."""
        state = get_peft_model_state_dict(self.c.unet)
        weights = {}
        for key, down in state.items():
            if key.endswith(".lora_A.weight"):
                module = key.removesuffix(".lora_A.weight")
                weights[module] = (down.detach().float().cpu(), state[f"{module}.lora_B.weight"].detach().float().cpu())
        return weights

    def state_dict(self) -> dict:
        return {
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": self.lr_scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
        }

    def load_state_dict(self, trainable: dict, state: dict) -> None:
        missing = sorted(set(self.params) - set(trainable))
        if missing:
            raise ValueError(f"checkpoint lacks LoRA parameters {missing[:3]} (another rank or model?)")
        with torch.no_grad():
            for name, param in self.params.items():
                param.copy_(trainable[name])
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        self.scaler.load_state_dict(state["scaler"])
