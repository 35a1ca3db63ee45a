"""python -m training.lora: LoRA fine-tuning of SD 1.5 for the `animals` or `txt2img` archive.

    python -m training.lora --data-dir data/animals --epochs 10 --archive
    python -m training.lora --capability txt2img --style monet --data-dir data/monet --archive --deploy
    python -m training.lora --resume runs/lora-20250101-120000-1a2b3c      # after Ctrl-C

The run folder is described in training/lora/train.py.
"""

import argparse
from pathlib import Path

from training.job_cli import add_run_options, run_job
from training.lora.config import (
    CAPABILITIES,
    DATASET_KINDS,
    INIT_LORA_WEIGHTS,
    LATENT_CACHES,
    LR_SCHEDULES,
    MIXED_PRECISION,
    Augmentation,
    LoraTrainConfig,
)
from training.lora.train import train_lora

DEFAULTS = LoraTrainConfig(data_dir=Path("."))
AUG = Augmentation()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training.lora", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data-dir", type=Path, help="class folders (animals) or a folder of paintings (style)")
    p.add_argument("--capability", choices=CAPABILITIES, default=DEFAULTS.capability)
    p.add_argument("--style", help="txt2img: the new style's name (its LoRA file name)")
    p.add_argument("--dataset", choices=DATASET_KINDS, help="default: classes for animals, style for txt2img")
    p.add_argument("--token", help="style datasets: the style's word in the prompts (default: the style)")
    p.add_argument("--model-dir", type=Path, help="SD 1.5 diffusers folder (default: weights/sd15 or its tiny twin)")
    p.add_argument("--resolution", type=int, default=DEFAULTS.resolution_px, dest="resolution_px")
    p.add_argument("--val-fraction", type=float, default=DEFAULTS.val_fraction)
    p.add_argument(
        "--augment-variants",
        type=int,
        default=AUG.variants,
        help="augmented copies per image (rotation, translation, scale, brightness); 0: none",
    )
    p.add_argument("--rotation-deg", type=float, default=AUG.rotation_deg)
    p.add_argument("--translate-frac", type=float, default=AUG.translate_frac)
    p.add_argument("--scale-range", type=float, nargs=2, default=(AUG.scale_min, AUG.scale_max))
    p.add_argument("--brightness", type=float, default=AUG.brightness)
    p.add_argument("--rank", type=int, default=DEFAULTS.rank)
    p.add_argument("--lora-alpha", type=float, default=DEFAULTS.lora_alpha)
    p.add_argument("--lora-dropout", type=float, default=DEFAULTS.lora_dropout)
    p.add_argument("--init-lora-weights", choices=INIT_LORA_WEIGHTS, default=DEFAULTS.init_lora_weights)
    p.add_argument("--lr", type=float, default=DEFAULTS.learning_rate, dest="learning_rate")
    p.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=DEFAULTS.lr_schedule)
    p.add_argument("--warmup-steps", type=int, default=DEFAULTS.warmup_steps)
    p.add_argument("--weight-decay", type=float, default=DEFAULTS.weight_decay)
    p.add_argument("--max-grad-norm", type=float, default=DEFAULTS.max_grad_norm)
    p.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size)
    p.add_argument("--grad-accum", type=int, default=DEFAULTS.grad_accum_steps, dest="grad_accum_steps")
    p.add_argument("--epochs", type=int, default=DEFAULTS.epochs)
    p.add_argument("--max-steps", type=int)
    p.add_argument("--mixed-precision", choices=MIXED_PRECISION, default=DEFAULTS.mixed_precision)
    p.add_argument("--device", default=DEFAULTS.device)
    p.add_argument("--seed", type=int, default=DEFAULTS.seed)
    p.add_argument("--checkpoint-every", type=int, default=DEFAULTS.checkpoint_every)
    p.add_argument("--keep-checkpoints", type=int, default=DEFAULTS.keep_checkpoints)
    p.add_argument("--latent-cache", choices=LATENT_CACHES, default=DEFAULTS.latent_cache)
    p.add_argument("--validation-images", type=int, default=DEFAULTS.validation_images)
    p.add_argument("--validation-steps", type=int, default=DEFAULTS.validation_steps)
    p.add_argument("--validation-guidance", type=float, default=DEFAULTS.validation_guidance)
    add_run_options(p, "lora")
    return p


def config_from(args) -> LoraTrainConfig:
    if args.data_dir is None:
        raise ValueError("--data-dir is required (or --resume RUN)")
    augmentation = Augmentation(
        variants=args.augment_variants,
        rotation_deg=args.rotation_deg,
        translate_frac=args.translate_frac,
        scale_min=args.scale_range[0],
        scale_max=args.scale_range[1],
        brightness=args.brightness,
    )
    names = (
        "capability",
        "style",
        "dataset",
        "token",
        "model_dir",
        "resolution_px",
        "val_fraction",
        "rank",
        "lora_alpha",
        "lora_dropout",
        "init_lora_weights",
        "learning_rate",
        "lr_schedule",
        "warmup_steps",
        "weight_decay",
        "max_grad_norm",
        "batch_size",
        "grad_accum_steps",
        "epochs",
        "max_steps",
        "mixed_precision",
        "device",
        "seed",
        "checkpoint_every",
        "keep_checkpoints",
        "latent_cache",
        "validation_images",
        "validation_steps",
        "validation_guidance",
    )
    return LoraTrainConfig(
        data_dir=args.data_dir,
        weights_dir=args.weights,
        augmentation=augmentation,
        **{n: getattr(args, n) for n in names},
    )


def main(argv=None) -> None:
    run_job(parser().parse_args(argv), argv, "lora", config_from, LoraTrainConfig.from_dict, train_lora)
