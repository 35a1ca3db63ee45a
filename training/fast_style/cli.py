"""python -m training.fast_style: train a TransformerNet for a new style (Johnson et al. 2016).

    python -m training.fast_style --content-dir data/coco --style-image starry.jpg --style starry --archive
    python -m training.fast_style --resume runs/fast_style-20250101-120000-1a2b3c   # after Ctrl-C

The perceptual loss is pytorch/examples' fast_neural_style (training/fast_style/perceptual.py);
content weight 1e5, style weight 1e10, Adam 1e-3, 256 px, batch 4. The exported state dict is
in the pytorch/examples layout the server loads; `--archive` builds the next fast_style
version, which serves the new style by name. The run folder is described in train.py.
"""

import argparse
from pathlib import Path

from training.fast_style.config import FastStyleTrainConfig
from training.fast_style.train import train_fast_style
from training.job_cli import add_run_options, run_job

DEFAULTS = FastStyleTrainConfig(Path("."), Path("."), "x")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training.fast_style", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--content-dir", type=Path, help="content images (searched recursively)")
    p.add_argument("--style-image", type=Path)
    p.add_argument("--style", help="the new style's name [a-z0-9_]+")
    p.add_argument("--image-size", type=int, default=DEFAULTS.image_size_px, dest="image_size_px")
    p.add_argument("--style-size", type=int, default=DEFAULTS.style_size_px, dest="style_size_px")
    p.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size)
    p.add_argument("--epochs", type=int, default=DEFAULTS.epochs)
    p.add_argument("--max-steps", type=int)
    p.add_argument("--lr", type=float, default=DEFAULTS.learning_rate, dest="learning_rate")
    p.add_argument("--content-weight", type=float, default=DEFAULTS.content_weight)
    p.add_argument("--style-weight", type=float, default=DEFAULTS.style_weight)
    p.add_argument("--seed", type=int, default=DEFAULTS.seed)
    p.add_argument("--checkpoint-every", type=int, default=DEFAULTS.checkpoint_every)
    p.add_argument("--keep-checkpoints", type=int, default=DEFAULTS.keep_checkpoints)
    p.add_argument("--device", default=DEFAULTS.device)
    add_run_options(p, "fast_style")
    return p


def config_from(args) -> FastStyleTrainConfig:
    if not (args.content_dir and args.style_image and args.style):
        raise ValueError("--content-dir, --style-image and --style are required (or --resume RUN)")
    names = (
        "content_dir",
        "style_image",
        "style",
        "image_size_px",
        "style_size_px",
        "batch_size",
        "epochs",
        "max_steps",
        "learning_rate",
        "content_weight",
        "style_weight",
        "seed",
        "checkpoint_every",
        "keep_checkpoints",
        "device",
    )
    return FastStyleTrainConfig(weights_dir=args.weights, **{n: getattr(args, n) for n in names})


def main(argv=None) -> None:
    run_job(
        parser().parse_args(argv), argv, "fast_style", config_from, FastStyleTrainConfig.from_dict, train_fast_style
    )
