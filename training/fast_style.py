"""python -m training.fast_style: train a TransformerNet for a new style (Johnson et al. 2016).

    python -m training.fast_style --content-dir data/coco --style-image starry.jpg --style starry --archive

The perceptual loss is pytorch/examples' fast_neural_style: VGG16 features of the output and
the content image at relu2_2 (content), Gram matrices normalised by C*H*W at relu1_2, relu2_2,
relu3_3 and relu4_3 (style); content weight 1e5, style weight 1e10, Adam 1e-3, 256 px,
batch 4. The exported state dict is in the pytorch/examples layout the server loads
(weights/fast_style/<style>.safetensors); `--archive` builds the next fast_style version, which
serves the new style by name.
"""

import argparse
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
from safetensors.torch import save_file
from torch.nn import functional as F
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF
from tqdm import tqdm

from imagelab.fast_style.transformer_net import TransformerNet
from training.checkpoints import capture_rng, latest_checkpoint, load_checkpoint, restore_rng, save_checkpoint
from training.data import IMAGE_SUFFIXES, load_image, unreadable_reason
from training.metrics import plot_metrics, write_metrics_csv
from training.runs import (
    RUNS_DIR,
    new_run_dir,
    read_run_config,
    resolve_run_dir,
    to_jsonable,
    write_run_config,
    write_skipped,
)
from training.vgg16 import load_vgg16_features, normalize_batch, resolve_vgg16
from weightstore.layout import WeightsLayout

METRIC_COLUMNS = ("epoch", "step", "content_loss", "style_loss", "total_loss", "lr")
_STYLE_NAME = re.compile(r"^[a-z0-9_]+$")


@dataclass(frozen=True)
class FastStyleTrainConfig:
    content_dir: Path
    style_image: Path
    style: str  # the new style's name, as requests will ask for it
    weights_dir: Path | None = None
    image_size_px: int = 256
    style_size_px: int | None = None  # None: the style image as it is
    batch_size: int = 4
    epochs: int = 2
    max_steps: int | None = None
    learning_rate: float = 1e-3
    content_weight: float = 1e5
    style_weight: float = 1e10
    seed: int = 42
    checkpoint_every: int = 2000
    keep_checkpoints: int = 2
    device: str = "cpu"

    def __post_init__(self):
        for name in ("content_dir", "style_image", "weights_dir"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))
        if not _STYLE_NAME.match(self.style or ""):
            raise ValueError(f"style must match [a-z0-9_]+, got {self.style!r}")
        if self.image_size_px < 16 or self.image_size_px % 4:
            raise ValueError(f"image_size_px must be a multiple of 4, at least 16; got {self.image_size_px}")
        for name in ("batch_size", "epochs", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be at least 1 (or None), got {self.max_steps}")
        if not (self.learning_rate > 0 and self.content_weight >= 0 and self.style_weight >= 0):
            raise ValueError("learning_rate must be > 0, content_weight and style_weight >= 0")
        if self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be >= 0, got {self.checkpoint_every}")


class FastStyleRun(NamedTuple):
    run_dir: Path
    weights_path: Path
    steps: int
    metrics: list
    skipped_images: int


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C), normalised by C*H*W as in pytorch/examples."""
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w)  # (B, C, HW)
    return flat.bmm(flat.transpose(1, 2)) / (c * h * w)


def content_images(folder: Path) -> tuple[list[Path], list]:
    """Every readable image under `folder` (recursively: COCO-style flat or class folders)."""
    readable, skipped = [], []
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
        reason = unreadable_reason(path)
        (readable.append(path) if reason is None else skipped.append((path, reason)))
    return readable, skipped


def train_fast_style(
    config: FastStyleTrainConfig, run_dir: Path, resume: bool = False, argv: list | None = None
) -> FastStyleRun:
    run_dir = Path(run_dir)
    paths, skipped = content_images(config.content_dir)
    if not paths:
        raise ValueError(f"{config.content_dir} holds no readable {'/'.join(IMAGE_SUFFIXES)} images")
    if unreadable_reason(config.style_image) is not None:
        raise ValueError(f"style_image {config.style_image} is not a readable image")
    layout = WeightsLayout(config.weights_dir) if config.weights_dir else WeightsLayout.default()
    vgg_weights = resolve_vgg16(layout)
    if not resume:
        write_run_config(
            run_dir,
            config,
            argv,
            extra={
                "vgg16": str(vgg_weights.path),
                "vgg16_synthetic": vgg_weights.synthetic,
                "content_images": len(paths),
                "skipped_images": len(skipped),
            },
        )
    write_skipped(run_dir, skipped)
    device = config.device
    vgg = load_vgg16_features(vgg_weights.path, device)
    torch.manual_seed(config.seed)
    transformer = TransformerNet().to(device).train()
    optimizer = torch.optim.Adam(transformer.parameters(), config.learning_rate)
    style = _style_tensor(config).to(device)  # (1, 3, H, W) 0-255
    with torch.no_grad():
        gram_style = [gram_matrix(y) for y in vgg(normalize_batch(style))]

    batches_per_epoch = math.ceil(len(paths) / config.batch_size)
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

    def state() -> dict:
        return {"optimizer": optimizer.state_dict(), "rng": capture_rng(generator), "metrics": metrics, "sums": sums}

    progress = tqdm(total=total_steps, initial=step, desc=f"fast_style {run_dir.name}", unit="step")
    try:
        while step < total_steps:
            epoch, position = divmod(step, batches_per_epoch)
            order = torch.randperm(len(paths), generator=torch.Generator().manual_seed(config.seed * 100_003 + epoch))
            chosen = order[position * config.batch_size : (position + 1) * config.batch_size].tolist()
            x = torch.stack([load_image(paths[i], config.image_size_px) * 255.0 for i in chosen]).to(device)
            y = transformer(x)
            features_y, features_x = vgg(normalize_batch(y)), vgg(normalize_batch(x))
            content_loss = config.content_weight * F.mse_loss(features_y.relu2_2, features_x.relu2_2)
            style_loss = config.style_weight * sum(
                F.mse_loss(gram_matrix(fy), gs.expand(len(chosen), -1, -1)) for fy, gs in zip(features_y, gram_style)
            )
            total = content_loss + style_loss
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            step += 1
            row = sums.setdefault(epoch, {"content_loss": 0.0, "style_loss": 0.0, "n": 0})
            row["content_loss"] += float(content_loss.detach())
            row["style_loss"] += float(style_loss.detach())
            row["n"] += 1
            progress.update(1)
            progress.set_postfix(
                content=f"{row['content_loss'] / row['n']:.3g}", style=f"{row['style_loss'] / row['n']:.3g}"
            )
            if step % batches_per_epoch == 0 or step == total_steps:
                metrics.append(_row(epoch, step, sums[epoch], config.learning_rate))
                _write_metrics(run_dir, metrics)
            if config.checkpoint_every and step % config.checkpoint_every == 0:
                save_checkpoint(run_dir, step, transformer.state_dict(), state(), config.keep_checkpoints)
    except KeyboardInterrupt:
        save_checkpoint(run_dir, step, transformer.state_dict(), state(), config.keep_checkpoints)
        tqdm.write(f"interrupted at step {step}; resume with: python -m training.fast_style --resume {run_dir}")
        raise
    finally:
        progress.close()
    save_checkpoint(run_dir, step, transformer.state_dict(), state(), config.keep_checkpoints)
    weights_path = run_dir / "export" / f"{config.style}.safetensors"
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in transformer.state_dict().items()}
    save_file(tensors, str(weights_path), metadata={"trained": f"fast_style/{config.style} run {run_dir.name}"})
    return FastStyleRun(run_dir, weights_path, step, metrics, len(skipped))


def _style_tensor(config: FastStyleTrainConfig) -> torch.Tensor:
    from PIL import Image

    with Image.open(config.style_image) as opened:
        image = opened.convert("RGB")
    if config.style_size_px:
        image = TF.resize(image, config.style_size_px, interpolation=InterpolationMode.BICUBIC, antialias=True)
    return TF.to_tensor(image)[None] * 255.0


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


def _write_metrics(run_dir: Path, metrics: list) -> None:
    write_metrics_csv(metrics, run_dir / "metrics.csv", METRIC_COLUMNS)
    plot_metrics(metrics, run_dir / "metrics.png", "epoch", METRIC_COLUMNS[2:])


def lineage_of(run: FastStyleRun, config: FastStyleTrainConfig) -> dict:
    from training.publish import sha256_of

    return {
        "run_id": run.run_dir.name,
        "run_dir": str(run.run_dir.resolve()),
        "job": "fast_style",
        "config": to_jsonable(config),
        "steps": run.steps,
        "final_metrics": run.metrics[-1] if run.metrics else None,
        "exported": {"file": run.weights_path.name, "sha256": sha256_of(run.weights_path)},
        "skipped_images": run.skipped_images,
    }


def main(argv=None) -> None:
    from training.publish import DEFAULT_STORE, DEFAULT_WORKDIR, announce, publish

    d = FastStyleTrainConfig(Path("."), Path("."), "x")
    p = argparse.ArgumentParser(
        prog="python -m training.fast_style", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--content-dir", type=Path, help="content images (searched recursively)")
    p.add_argument("--style-image", type=Path)
    p.add_argument("--style", help="the new style's name [a-z0-9_]+")
    p.add_argument("--weights", type=Path, help="weights root (default: weights/)")
    p.add_argument("--runs-dir", type=Path, default=RUNS_DIR)
    p.add_argument("--run-id")
    p.add_argument("--resume", metavar="RUN", help="continue a run from its last checkpoint")
    p.add_argument("--image-size", type=int, default=d.image_size_px)
    p.add_argument("--style-size", type=int, default=d.style_size_px)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--max-steps", type=int)
    p.add_argument("--lr", type=float, default=d.learning_rate)
    p.add_argument("--content-weight", type=float, default=d.content_weight)
    p.add_argument("--style-weight", type=float, default=d.style_weight)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every)
    p.add_argument("--device", default=d.device)
    p.add_argument("--threads", type=int)
    p.add_argument("--archive", action="store_true", help="build the next fast_style version with this style")
    p.add_argument("--store", type=Path, default=DEFAULT_STORE)
    p.add_argument("--deploy", action="store_true", help="with --archive: deploy it to the running server")
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.deploy and not args.archive:
        raise SystemExit("error: --deploy needs --archive")
    try:
        if args.resume:
            run_dir = resolve_run_dir(args.resume, args.runs_dir)
            config = FastStyleTrainConfig(**read_run_config(run_dir)["config"])
        else:
            if not (args.content_dir and args.style_image and args.style):
                raise ValueError("--content-dir, --style-image and --style are required (or --resume RUN)")
            config = FastStyleTrainConfig(
                args.content_dir,
                args.style_image,
                args.style,
                args.weights,
                args.image_size,
                args.style_size,
                args.batch_size,
                args.epochs,
                args.max_steps,
                args.lr,
                args.content_weight,
                args.style_weight,
                args.seed,
                args.checkpoint_every,
                device=args.device,
            )
            run_dir = new_run_dir(args.runs_dir, args.run_id, "fast_style")
        run = train_fast_style(config, run_dir, resume=bool(args.resume), argv=sys.argv if argv is None else argv)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None
    print(f"run {run.run_dir}: {run.steps} steps, weights {run.weights_path}")
    if not args.archive:
        return
    root = config.weights_dir or WeightsLayout.default().root
    published = publish(
        "fast_style",
        run.weights_path,
        f"fast_style/{config.style}.safetensors",
        root,
        args.store,
        lineage_of(run, config),
    )
    announce(published, args.deploy, args.workdir)


if __name__ == "__main__":
    main()
