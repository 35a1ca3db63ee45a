"""The LoRA job's train loop: data -> optimizer steps -> per-epoch metrics -> exported LoRA.

A run lives in runs/<run_id>/: config.json (resolved config, arguments and the trainable
parameter share), metrics.csv, metrics.xlsx and metrics.png (per epoch), samples/ (validation
pictures), checkpoints/, latents/ (the VAE latent cache), skipped_images.json and export/:
<style>.safetensors, the LoRA after the last step, and clip-<score>.safetensors, the epoch with
the best CLIP score so far (both in the diffusers layout with rank and alpha kept;
imagelab.diffusion.lora). `--archive` publishes the best unless told otherwise.
"""

import math
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from imagelab.diffusion.animals import write_lora_classes
from imagelab.diffusion.lora import save_lora
from training.checkpoints import (
    StopOnSigint,
    capture_rng,
    epoch_order,
    latest_checkpoint,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)
from training.clip_score import ClipScorer, resolve_clip_dir
from training.lora.config import LoraTrainConfig
from training.lora.data import Example, class_prompts, load_dataset, pick_prompt, prepare_pixels, style_prompts
from training.lora.latent_cache import LatentCache
from training.lora.trainer import LoraTrainer, StepStats, load_components
from training.metrics import write_metrics
from training.runs import TrainedRun, best_row, parameter_share, weights_layout, write_run_config, write_skipped

METRIC_COLUMNS = ("epoch", "step", "train_loss", "val_loss", "clip_score", "lr", "grad_norm")
PLOTTED = ("train_loss", "val_loss", "clip_score", "lr", "grad_norm")


def resolve_model_dir(config: LoraTrainConfig) -> Path:
    if config.model_dir is not None:
        return config.model_dir
    from imagelab.diffusion import synthesize_tiny_sd15

    return weights_layout(config.weights_dir).resolve_dir("sd15", "model_index.json", synthesize_tiny_sd15).path


def train_lora(
    config: LoraTrainConfig,
    run_dir: Path,
    resume: bool = False,
    argv: list | None = None,
    on_step: Callable[[int, StepStats], None] | None = None,
) -> TrainedRun:
    """Train (or, with `resume`, continue from the run's last checkpoint) and export the LoRA
    (the TrainedRun's `weights_path`).

    KeyboardInterrupt (Ctrl-C, or raised by `on_step`) writes a checkpoint of the last
    completed step and re-raises; `resume=True` continues from it bit for bit."""
    run_dir = Path(run_dir)
    model_dir = resolve_model_dir(config)
    data = load_dataset(config)
    if not data.train:
        raise ValueError(f"{config.data_dir}: no training images left after the validation split")
    components = load_components(model_dir, config.device)
    batches_per_epoch = math.ceil(len(data.train) / config.batch_size)
    total_steps = config.max_steps or math.ceil(config.epochs * batches_per_epoch / config.grad_accum_steps)
    trainer = LoraTrainer(config, components, total_steps)
    parameters = parameter_share(components.unet)
    tqdm.write(f"lora {run_dir.name}: {parameters.describe()} of the UNet")
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
                "parameters": parameters.to_record(),
            },
        )
    write_skipped(run_dir, list(data.skipped))
    export_dir = run_dir / "export"
    cache = LatentCache(
        config.latent_cache,
        run_dir / "latents",
        namespace=f"{(model_dir / 'vae').resolve()}|{config.augmentation}|{config.seed}",
    )
    clip = (
        ClipScorer(resolve_clip_dir(weights_layout(config.weights_dir)).path, config.device)
        if config.validation_images
        else None
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
        with StopOnSigint() as stop:
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
                    write_metrics(metrics, run_dir, METRIC_COLUMNS, PLOTTED)
                    if best_row(metrics) is metrics[-1]:  # a new best CLIP score: keep these weights
                        _export_best(export_dir, trainer, config, metrics[-1]["clip_score"], data.labels)
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
    lora_path = _export(export_dir / f"{config.style}.safetensors", trainer, config, data.labels)
    write_metrics(metrics, run_dir, METRIC_COLUMNS, PLOTTED)
    return TrainedRun(
        "lora",
        config,
        run_dir,
        lora_path,
        step,
        metrics,
        len(data.skipped),
        base_model_dir=model_dir,
        best_path=_best_path(export_dir, metrics),
        parameters=parameters,
    )


def best_file_name(clip_score: float) -> str:
    """`clip-31.475.safetensors`, the seed's name for its best checkpoint."""
    return f"clip-{clip_score:.3f}.safetensors"


def _export(path: Path, trainer: LoraTrainer, config: LoraTrainConfig, labels: tuple) -> Path:
    """The current LoRA as a file; a class-folder run's file carries its class list in its
    metadata, so the animals archive built from it serves those classes."""
    path = save_lora(path, trainer.lora_weights(), alpha=config.lora_alpha)
    if config.dataset == "classes" and labels:
        write_lora_classes(path, labels)
    return path


def _export_best(
    export_dir: Path, trainer: LoraTrainer, config: LoraTrainConfig, clip_score: float, labels: tuple = ()
) -> Path:
    """Export the current LoRA as the run's best, replacing the previous best (one is kept)."""
    path = _export(export_dir / best_file_name(clip_score), trainer, config, labels)
    for older in export_dir.glob("clip-*.safetensors"):
        if older != path:
            older.unlink()
    return path


def _best_path(export_dir: Path, metrics: list) -> Path | None:
    """The best epoch's export; None when no epoch had a CLIP score (validation_images=0)."""
    best = best_row(metrics)
    if best is None:
        return None
    path = export_dir / best_file_name(best["clip_score"])
    if not path.is_file():  # a run resumed from before its best was written, then that file was removed
        tqdm.write(f"warning: {path} is missing; only the last weights are exported")
        return None
    return path


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


def _save_grid(images: list, path: Path) -> None:
    from PIL import Image

    width, height = images[0].size
    grid = Image.new("RGB", (width * len(images), height))
    for i, image in enumerate(images):
        grid.paste(image, (i * width, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)
