"""python -m training.lora: LoRA fine-tuning of SD 1.5 for the `animals` or `txt2img` archive.

    python -m training.lora --data-dir data/animals --epochs 10 --archive
    python -m training.lora --capability txt2img --style monet --data-dir data/monet --archive --deploy
    python -m training.lora --resume runs/lora-20250101-120000-1a2b3c      # after Ctrl-C

A run lives in runs/<run_id>/: config.json (resolved config and arguments), metrics.csv and
metrics.png (per epoch), samples/ (validation pictures), checkpoints/, latents/ (the VAE
latent cache), skipped_images.json and export/<style>.safetensors (diffusers layout, rank and
alpha kept; imagelab.diffusion.lora).
"""

import math
import signal
import threading
from pathlib import Path
from typing import Callable, NamedTuple

import torch
from tqdm import tqdm

from imagelab.diffusion.lora import save_lora
from training.checkpoints import capture_rng, latest_checkpoint, load_checkpoint, restore_rng, save_checkpoint
from training.clip_score import ClipScorer, resolve_clip_dir
from training.data import (
    DatasetSplit,
    Example,
    class_folder_dataset,
    class_prompts,
    pick_prompt,
    prepare_pixels,
    style_dataset,
    style_prompts,
)
from training.latent_cache import LatentCache
from training.lora_config import LoraTrainConfig
from training.lora_trainer import LoraTrainer, StepStats, load_components
from training.metrics import plot_metrics, write_metrics_csv
from training.runs import to_jsonable, write_run_config, write_skipped
from weightstore.layout import WeightsLayout

METRIC_COLUMNS = ("epoch", "step", "train_loss", "val_loss", "clip_score", "lr", "grad_norm")
PLOTTED = ("train_loss", "val_loss", "clip_score", "lr", "grad_norm")


class LoraRun(NamedTuple):
    run_dir: Path
    lora_path: Path
    model_dir: Path
    steps: int
    metrics: list  # one dict per epoch, METRIC_COLUMNS
    skipped_images: int


def load_dataset(config: LoraTrainConfig) -> DatasetSplit:
    if config.dataset == "classes":
        return class_folder_dataset(config.data_dir, config.val_fraction, config.seed)
    return style_dataset(config.data_dir, config.token, config.val_fraction, config.seed)


def resolve_model_dir(config: LoraTrainConfig) -> Path:
    if config.model_dir is not None:
        return config.model_dir
    from imagelab.diffusion import synthesize_tiny_sd15

    return weights_layout(config).resolve_dir("sd15", "model_index.json", synthesize_tiny_sd15).path


def weights_layout(config: LoraTrainConfig) -> WeightsLayout:
    return WeightsLayout(config.weights_dir) if config.weights_dir else WeightsLayout.default()


def epoch_order(count: int, seed: int, epoch: int) -> list[int]:
    """A fresh seeded shuffle per epoch that depends on nothing else, so a resumed run visits
    the same examples in the same order as an uninterrupted one."""
    return torch.randperm(count, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)).tolist()


class _StopOnSigint:
    """The first Ctrl-C lets the running optimizer step finish, then stops at a consistent
    checkpoint; a second one interrupts at once (the last periodic checkpoint stays)."""

    def __init__(self):
        self.requested = False
        self.previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        tqdm.write("stopping after this step (Ctrl-C again to stop now)")

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def train_lora(
    config: LoraTrainConfig,
    run_dir: Path,
    resume: bool = False,
    argv: list | None = None,
    on_step: Callable[[int, StepStats], None] | None = None,
) -> LoraRun:
    """Train (or, with `resume`, continue from the run's last checkpoint) and export the LoRA.

    KeyboardInterrupt (Ctrl-C, or raised by `on_step`) writes a checkpoint of the last
    completed step and re-raises; `resume=True` continues from it bit for bit."""
    run_dir = Path(run_dir)
    model_dir = resolve_model_dir(config)
    data = load_dataset(config)
    if not data.train:
        raise ValueError(f"{config.data_dir}: no training images left after the validation split")
    if not resume:
        write_run_config(
            run_dir,
            config,
            argv,
            extra={
                "model_dir": str(model_dir),
                "labels": list(data.labels),
                "train_images": len(data.train),
                "val_images": len(data.val),
                "skipped_images": len(data.skipped),
            },
        )
    write_skipped(run_dir, list(data.skipped))
    components = load_components(model_dir, config.device)
    batches_per_epoch = math.ceil(len(data.train) / config.batch_size)
    total_steps = config.max_steps or math.ceil(config.epochs * batches_per_epoch / config.grad_accum_steps)
    trainer = LoraTrainer(config, components, total_steps)
    cache = LatentCache(
        config.latent_cache,
        run_dir / "latents",
        namespace=f"{(model_dir / 'vae').resolve()}|{config.augmentation}|{config.seed}",
    )
    clip = (
        ClipScorer(resolve_clip_dir(weights_layout(config)).path, config.device) if config.validation_images else None
    )

    def posteriors(examples: list[Example], variant: int) -> torch.Tensor:
        def encode(ex):
            """A thunk the cache calls only on a miss."""
            return lambda: trainer.encode_posterior(
                prepare_pixels(ex, config.resolution_px, config.augmentation, variant, config.seed)
            )

        return torch.stack([cache.get(ex.path, config.resolution_px, variant, encode(ex)) for ex in examples])

    def micro_batch(index: int) -> tuple[int, tuple[torch.Tensor, list[str]]]:
        epoch, position = divmod(index, batches_per_epoch)
        order = epoch_order(len(data.train), config.seed, epoch)
        examples = [data.train[i] for i in order[position * config.batch_size : (position + 1) * config.batch_size]]
        variant = config.augmentation.variant_for_epoch(epoch)
        return epoch, (posteriors(examples, variant), [pick_prompt(ex, epoch, config.seed) for ex in examples])

    step, metrics, sums = 0, [], {}
    if resume:
        checkpoint = latest_checkpoint(run_dir)
        if checkpoint is None:
            raise FileNotFoundError(f"{run_dir} has no checkpoint to resume from")
        loaded = load_checkpoint(checkpoint)
        trainer.load_state_dict(loaded.trainable, loaded.state)
        restore_rng(loaded.state["rng"], trainer.generator)
        step, metrics, sums = loaded.step, list(loaded.state["metrics"]), dict(loaded.state["sums"])
    else:
        # Set-up (the CLIP model's synthesis and loading) draws from torch's global RNG, which
        # LoRA dropout uses; seeding here makes the run independent of what set-up did.
        torch.manual_seed(config.seed)

    def checkpoint_state() -> dict:
        return {**trainer.state_dict(), "rng": committed_rng, "metrics": metrics, "sums": sums}

    committed_rng = capture_rng(trainer.generator)
    progress = tqdm(total=total_steps, initial=step, desc=f"lora {run_dir.name}", unit="step")
    try:
        with _StopOnSigint() as stop:
            while step < total_steps:
                indices = range(step * config.grad_accum_steps, (step + 1) * config.grad_accum_steps)
                epochs_and_batches = [micro_batch(i) for i in indices]
                stats = trainer.step([b for _, b in epochs_and_batches])
                # Commit the step at once: step, RNG snapshot and running sums move together.
                step += 1
                committed_rng = capture_rng(trainer.generator)
                for epoch, (_, prompts) in epochs_and_batches:
                    total = sums.setdefault(epoch, {"loss": 0.0, "n": 0, "grad_norm": 0.0, "steps": 0})
                    total["loss"] += stats.loss * len(prompts)
                    total["n"] += len(prompts)
                last_epoch = epochs_and_batches[-1][0]
                sums[last_epoch]["grad_norm"] += stats.grad_norm
                sums[last_epoch]["steps"] += 1
                sums[last_epoch]["lr"] = stats.lr
                progress.update(1)
                progress.set_postfix(loss=f"{stats.loss:.4f}", lr=f"{stats.lr:.2e}")
                finished = step * config.grad_accum_steps // batches_per_epoch
                if step == total_steps:
                    finished = max(finished, last_epoch + 1)  # a capped run's last, partial epoch
                while len(metrics) < finished:
                    metrics.append(
                        _evaluate(len(metrics), step, sums, data, trainer, clip, config, run_dir, posteriors)
                    )
                    _write_metrics(run_dir, metrics)
                if config.checkpoint_every and step % config.checkpoint_every == 0:
                    save_checkpoint(run_dir, step, trainer.params, checkpoint_state(), config.keep_checkpoints)
                if on_step is not None:
                    on_step(step, stats)
                if stop.requested:
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        if trainer.lr_scheduler.last_epoch == step:  # no half-applied step: the state is step's
            save_checkpoint(run_dir, step, trainer.params, checkpoint_state(), config.keep_checkpoints)
            tqdm.write(f"interrupted at step {step}; resume with: python -m training.lora --resume {run_dir}")
        raise
    finally:
        progress.close()
    save_checkpoint(run_dir, step, trainer.params, checkpoint_state(), config.keep_checkpoints)
    lora_path = save_lora(
        run_dir / "export" / f"{config.style}.safetensors", trainer.lora_weights(), alpha=config.lora_alpha
    )
    _write_metrics(run_dir, metrics)
    return LoraRun(run_dir, lora_path, model_dir, step, metrics, len(data.skipped))


def _evaluate(epoch, step, sums, data, trainer, clip, config, run_dir, posteriors) -> dict:
    """One metrics row for `epoch` (0-based): its training averages, validation loss and the
    CLIP score of pictures generated with the current LoRA."""
    total = sums.get(epoch, {"loss": math.nan, "n": 1, "grad_norm": math.nan, "steps": 1, "lr": math.nan})
    val_batches = [
        (posteriors(list(chunk), 0), [ex.prompts[0] for ex in chunk])
        for chunk in (data.val[i : i + config.batch_size] for i in range(0, len(data.val), config.batch_size))
    ]
    clip_score = None
    if clip is not None:
        if config.dataset == "classes":
            prompts = [class_prompts(data.labels[i % len(data.labels)])[0] for i in range(config.validation_images)]
        else:
            subjects = style_prompts(config.token)
            prompts = [subjects[i % len(subjects)] for i in range(config.validation_images)]
        images = trainer.generate(
            prompts, config.resolution_px, config.validation_steps, config.validation_guidance, seed=config.seed
        )
        clip_score = sum(clip.score(images, prompts)) / len(images)
        _save_grid(images, run_dir / "samples" / f"epoch_{epoch + 1:03d}.png")
    return {
        "epoch": epoch + 1,
        "step": step,
        "train_loss": total["loss"] / max(total["n"], 1),
        "val_loss": trainer.validation_loss(val_batches),
        "clip_score": clip_score,
        "lr": total.get("lr", math.nan),
        "grad_norm": total["grad_norm"] / max(total["steps"], 1),
    }


def _write_metrics(run_dir: Path, metrics: list) -> None:
    write_metrics_csv(metrics, run_dir / "metrics.csv", METRIC_COLUMNS)
    plot_metrics(metrics, run_dir / "metrics.png", "epoch", PLOTTED)


def _save_grid(images: list, path: Path) -> None:
    from PIL import Image

    width, height = images[0].size
    grid = Image.new("RGB", (width * len(images), height))
    for i, image in enumerate(images):
        grid.paste(image, (i * width, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)


def lineage_of(run: LoraRun, config: LoraTrainConfig) -> dict:
    """What the archive's manifest records under `training`."""
    from training.publish import sha256_of

    return {
        "run_id": run.run_dir.name,
        "run_dir": str(run.run_dir.resolve()),
        "job": "lora",
        "config": to_jsonable(config),
        "base_model": str(run.model_dir.resolve()),
        "steps": run.steps,
        "final_metrics": run.metrics[-1] if run.metrics else None,
        "exported": {"file": run.lora_path.name, "sha256": sha256_of(run.lora_path)},
        "skipped_images": run.skipped_images,
    }


def archive_path_for(config: LoraTrainConfig) -> str:
    """Where the capability's plan looks for this LoRA (archiver/capabilities.py)."""
    return f"lora/{config.style}.safetensors"


if __name__ == "__main__":
    from training.lora_cli import main

    main()
