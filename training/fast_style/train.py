"""The fast-style job's train loop: content batches -> TransformerNet -> perceptual loss ->
per-epoch metrics -> the exported state dict.

A run lives in runs/<run_id>/: config.json (resolved config and arguments), metrics.csv,
metrics.xlsx and metrics.png (per epoch), checkpoints/, skipped_images.json and export/<style>.safetensors, a
TransformerNet state dict in the pytorch/examples layout the server loads.
"""

import math
from pathlib import Path

import torch
from safetensors.torch import save_file
from tqdm import tqdm

from imagelab.fast_style.transformer_net import TransformerNet
from training.checkpoints import (
    StopOnSigint,
    capture_rng,
    latest_checkpoint,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)
from training.fast_style.config import FastStyleTrainConfig
from training.fast_style.data import content_batch, content_images, load_style_image
from training.fast_style.perceptual import PerceptualLoss
from training.fast_style.vgg16 import load_vgg16_features, resolve_vgg16
from training.metrics import write_metrics
from training.runs import TrainedRun, parameter_share, weights_layout, write_run_config, write_skipped

METRIC_COLUMNS = ("epoch", "step", "content_loss", "style_loss", "total_loss", "lr")


def train_fast_style(
    config: FastStyleTrainConfig, run_dir: Path, resume: bool = False, argv: list | None = None
) -> TrainedRun:
    """Train (or, with `resume`, continue from the run's last checkpoint) and export the style
    (the TrainedRun's `weights_path`). Ctrl-C stops after the running step with a checkpoint."""
    run_dir = Path(run_dir)
    images = content_images(config.content_dir)
    style = load_style_image(config.style_image, config.style_size_px).to(config.device)
    vgg_weights = resolve_vgg16(weights_layout(config.weights_dir))
    if not resume:
        write_run_config(
            run_dir,
            config,
            argv,
            extra={
                "vgg16": str(vgg_weights.path),
                "vgg16_synthetic": vgg_weights.synthetic,
                "content_images": len(images.paths),
                "skipped_images": len(images.skipped),
            },
        )
    write_skipped(run_dir, list(images.skipped))
    loss = PerceptualLoss(
        load_vgg16_features(vgg_weights.path, config.device), style, config.content_weight, config.style_weight
    )
    torch.manual_seed(config.seed)
    transformer = TransformerNet().to(config.device).train()
    parameters = parameter_share(transformer)
    optimizer = torch.optim.Adam(transformer.parameters(), config.learning_rate)

    batches_per_epoch = math.ceil(len(images.paths) / config.batch_size)
    total_steps = config.max_steps or config.epochs * batches_per_epoch
    step, metrics, sums = 0, [], {}
    generator = torch.Generator().manual_seed(config.seed)
    if resume:
        checkpoint = latest_checkpoint(run_dir)
        if checkpoint is None:
            raise FileNotFoundError(f"{run_dir} has no checkpoint to resume from")
        loaded = load_checkpoint(checkpoint)
        transformer.load_state_dict(loaded.trainable)
        optimizer.load_state_dict(loaded.state["optimizer"])
        restore_rng(loaded.state["rng"], generator)
        step, metrics, sums = loaded.step, list(loaded.state["metrics"]), dict(loaded.state["sums"])

    def checkpoint() -> Path:
        state = {"optimizer": optimizer.state_dict(), "rng": capture_rng(generator), "metrics": metrics, "sums": sums}
        return save_checkpoint(run_dir, step, transformer.state_dict(), state, config.keep_checkpoints)

    progress = tqdm(total=total_steps, initial=step, desc=f"fast_style {run_dir.name}", unit="step")
    try:
        with StopOnSigint() as stop:
            while step < total_steps:
                epoch = step // batches_per_epoch
                x = content_batch(images, step, config.batch_size, config.image_size_px, config.seed)
                x = x.to(config.device)  # (B, 3, S, S) 0-255
                terms = loss(transformer(x), x)
                optimizer.zero_grad(set_to_none=True)
                terms.total.backward()
                optimizer.step()
                step += 1
                row = sums.setdefault(epoch, {"content_loss": 0.0, "style_loss": 0.0, "n": 0})
                row["content_loss"] += float(terms.content.detach())
                row["style_loss"] += float(terms.style.detach())
                row["n"] += 1
                progress.update(1)
                progress.set_postfix(
                    content=f"{row['content_loss'] / row['n']:.3g}", style=f"{row['style_loss'] / row['n']:.3g}"
                )
                if step % batches_per_epoch == 0 or step == total_steps:
                    metrics.append(_row(epoch, step, sums[epoch], config.learning_rate))
                    write_metrics(metrics, run_dir, METRIC_COLUMNS, METRIC_COLUMNS[2:])
                if config.checkpoint_every and step % config.checkpoint_every == 0:
                    checkpoint()
                if stop.requested:
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        checkpoint()
        tqdm.write(f"interrupted at step {step}; resume with: python -m training.fast_style --resume {run_dir}")
        raise
    finally:
        progress.close()
    checkpoint()
    weights_path = run_dir / "export" / f"{config.style}.safetensors"
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in transformer.state_dict().items()}
    save_file(tensors, str(weights_path), metadata={"trained": f"fast_style/{config.style} run {run_dir.name}"})
    return TrainedRun(
        "fast_style", config, run_dir, weights_path, step, metrics, len(images.skipped), parameters=parameters
    )


def _row(epoch: int, step: int, sums: dict, lr: float) -> dict:
    content, style = sums["content_loss"] / sums["n"], sums["style_loss"] / sums["n"]
    return {
        "epoch": epoch + 1,
        "step": step,
        "content_loss": content,
        "style_loss": style,
        "total_loss": content + style,
        "lr": lr,
    }
