"""python -m training.lora: LoRA fine-tuning of SD 1.5 for the `animals` or `txt2img` archive.

    python -m training.lora --data-dir data/animals --epochs 10 --archive
    python -m training.lora --capability txt2img --style monet --data-dir data/monet --archive --deploy
    python -m training.lora --capability txt2img --style dusk --data-dir data/dusk --publish-adapter
    python -m training.lora --resume runs/lora-20250101-120000-1a2b3c      # after Ctrl-C

The run folder is described in training/lora/train.py. `--publish-adapter` copies the export
into the adapters folder the running txt2img workers watch (adapters/txt2img/{name}.safetensors),
where it is usable as style={name} within seconds; `--archive` builds a new archive version.
Both may be given.
"""

import argparse
from pathlib import Path

from imagelab.diffusion.adapters import ADAPTERS_DIR_ENV
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
from training.publish import adapter_target, default_adapters_dir, publish_adapter
from training.runs import WEIGHT_CHOICES, TrainedRun, chosen_weights

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
    p.add_argument(
        "--publish-adapter",
        action="store_true",
        help="txt2img: copy the LoRA into the adapters folder the server watches (a style within seconds)",
    )
    p.add_argument("--adapter-name", help="with --publish-adapter: the style's name (default: --style)")
    p.add_argument(
        "--adapters-dir",
        type=Path,
        help=f"with --publish-adapter: the adapters folder (default: ${ADAPTERS_DIR_ENV} or adapters/)",
    )
    p.add_argument(
        "--adapter-weights",
        choices=WEIGHT_CHOICES,
        default="best",
        help="with --publish-adapter: the epoch with the best CLIP score (where the run kept one) or the last; "
        "a different file of that name is replaced only with --overwrite",
    )
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
    args = parser().parse_args(argv)
    if args.publish_adapter and not args.resume:  # a bad name is refused before training, not after
        try:
            adapter_target(args.capability, args.adapter_name or args.style or "", adapters_dir(args))
        except ValueError as error:
            raise SystemExit(f"error: --publish-adapter: {error}") from None
    run = run_job(args, argv, "lora", config_from, LoraTrainConfig.from_dict, train_lora)
    if args.publish_adapter:
        try:
            path = publish_run_adapter(run, args.adapter_name, adapters_dir(args), args.adapter_weights, args.overwrite)
        except (ValueError, FileNotFoundError) as error:  # PublishConflict, a LoRA that does not fit
            raise SystemExit(f"error: {error} (the run and its export stay in {run.run_dir})") from None
        print(f"published {path}: style {path.stem} for the running {run.config.capability} workers")


def adapters_dir(args) -> Path:
    return args.adapters_dir or default_adapters_dir()


def publish_run_adapter(
    run: TrainedRun, name: str | None, adapters_root: Path, which: str = "best", overwrite: bool = False
) -> Path:
    """The run's exported LoRA (`which`: runs.chosen_weights) published into the adapters folder
    as style `name` (default: the run's style)."""
    config = run.config
    return publish_adapter(
        config.capability,
        chosen_weights(run, which),
        name or config.style,
        adapters_root,
        base_model_dir=run.base_model_dir,
        overwrite=overwrite,
    )
