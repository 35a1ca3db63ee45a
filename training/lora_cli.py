"""Command line of `python -m training.lora` (see training/lora.py for the run folder)."""

import argparse
import logging
import sys
from pathlib import Path

import torch

from training.data import Augmentation
from training.lora_config import (
    CAPABILITIES,
    DATASET_KINDS,
    INIT_LORA_WEIGHTS,
    LATENT_CACHES,
    LR_SCHEDULES,
    MIXED_PRECISION,
    LoraTrainConfig,
)
from training.publish import DEFAULT_STORE, DEFAULT_WORKDIR
from training.runs import RUNS_DIR, new_run_dir, read_run_config, resolve_run_dir

DEFAULTS = LoraTrainConfig(data_dir=Path("."))
AUG = Augmentation()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.lora", description=__doc__)
    p.add_argument("--data-dir", type=Path, help="class folders (animals) or a folder of paintings (style)")
    p.add_argument("--capability", choices=CAPABILITIES, default=DEFAULTS.capability)
    p.add_argument("--style", help="txt2img: the new style's name (its LoRA file name)")
    p.add_argument("--dataset", choices=DATASET_KINDS, help="default: classes for animals, style for txt2img")
    p.add_argument("--token", help="style datasets: the style's word in the prompts (default: the style)")
    p.add_argument("--model-dir", type=Path, help="SD 1.5 diffusers folder (default: weights/sd15 or its tiny twin)")
    p.add_argument("--weights", type=Path, help="weights root (default: weights/)")
    p.add_argument("--runs-dir", type=Path, default=RUNS_DIR)
    p.add_argument("--run-id", help="default: lora-<date>-<time>-<random>")
    p.add_argument(
        "--resume",
        metavar="RUN",
        help="continue a run (folder or id) from its last checkpoint, "
        "with its own config.json; training options are then ignored",
    )
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
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--archive", action="store_true", help="build the next animals/txt2img version from the LoRA")
    p.add_argument("--store", type=Path, default=DEFAULT_STORE, help="model store for --archive")
    p.add_argument("--deploy", action="store_true", help="with --archive: deploy it to the running server")
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="the running server's working dir")
    return p


def config_from(args) -> LoraTrainConfig:
    if args.data_dir is None:
        raise ValueError("--data-dir is required (or --resume RUN)")
    augmentation = Augmentation(
        args.augment_variants,
        args.rotation_deg,
        args.translate_frac,
        args.scale_range[0],
        args.scale_range[1],
        args.brightness,
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
    from training.lora import archive_path_for, lineage_of, train_lora
    from training.publish import announce, publish

    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.deploy and not args.archive:
        raise SystemExit("error: --deploy needs --archive (a version must be built before it is deployed)")
    try:
        if args.resume:
            run_dir = resolve_run_dir(args.resume, args.runs_dir)
            config = LoraTrainConfig.from_dict(read_run_config(run_dir)["config"])
        else:
            config = config_from(args)
            run_dir = new_run_dir(args.runs_dir, args.run_id, "lora")
        run = train_lora(config, run_dir, resume=bool(args.resume), argv=sys.argv if argv is None else argv)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None
    print(f"run {run.run_dir}: {run.steps} steps, LoRA {run.lora_path}")
    if run.skipped_images:
        print(f"skipped {run.skipped_images} unreadable image(s); see {run.run_dir / 'skipped_images.json'}")
    if run.metrics:
        print(
            "final metrics: "
            + ", ".join(f"{k}={v:.4g}" for k, v in run.metrics[-1].items() if isinstance(v, (int, float)))
        )
    if not args.archive:
        return
    published = publish(
        config.capability,
        run.lora_path,
        archive_path_for(config),
        (config.weights_dir or _default_weights()),
        args.store,
        lineage_of(run, config),
        base_model_dir=run.model_dir,
    )
    announce(published, args.deploy, args.workdir)


def _default_weights() -> Path:
    from weightstore.layout import WeightsLayout

    return WeightsLayout.default().root


if __name__ == "__main__":
    main()
