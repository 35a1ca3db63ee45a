"""What both training command lines share (`python -m training.lora`, `python -m training.fast_style`):
the run, resume, archive and deploy options, and the one flow they follow:

    config (or a resumed run's own config.json) -> train -> summary -> [--archive] the next
    archive version with the run's lineage -> [--deploy] the deploy flow
"""

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from training.publish import DEFAULT_STORE, DEFAULT_WORKDIR, Published, announce, publish
from training.runs import (
    RUNS_DIR,
    WEIGHT_CHOICES,
    TrainedRun,
    chosen_weights,
    lineage_of,
    new_run_dir,
    read_run_config,
    resolve_run_dir,
    weights_layout,
)
from weightstore.needs import trained_weights_file


def add_run_options(p: argparse.ArgumentParser, job: str) -> None:
    p.add_argument("--weights", type=Path, help="weights root (default: weights/)")
    p.add_argument("--runs-dir", type=Path, default=RUNS_DIR)
    p.add_argument("--run-id", help=f"default: {job}-<date>-<time>-<random>")
    p.add_argument(
        "--resume",
        metavar="RUN",
        help="continue a run (folder or id) from its last checkpoint, "
        "with its own config.json; training options are then ignored",
    )
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--archive", action="store_true", help="build the next version of the capability from the run")
    p.add_argument(
        "--archive-weights",
        choices=WEIGHT_CHOICES,
        default="best",
        help="with --archive: the epoch with the best CLIP score (where the run kept one) or the last",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="with --archive: replace a different file already published under the style's name",
    )
    p.add_argument("--store", type=Path, default=DEFAULT_STORE, help="model store for --archive")
    p.add_argument("--deploy", action="store_true", help="with --archive: deploy it to the running server")
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="the running server's working dir")


def run_job(
    args: argparse.Namespace,
    argv: list | None,
    job: str,
    config_from_args: Callable[[argparse.Namespace], object],
    config_from_dict: Callable[[dict], object],
    train: Callable[..., TrainedRun],
) -> TrainedRun:
    """Train as the command line asks (a new run, or `--resume`), print what came out and, with
    `--archive`, build (and with `--deploy`, deploy) the next version from it."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.deploy and not args.archive:
        raise SystemExit("error: --deploy needs --archive (a version must be built before it is deployed)")
    try:
        if args.resume:
            run_dir = resolve_run_dir(args.resume, args.runs_dir)
            config = config_from_dict(read_run_config(run_dir)["config"])
        else:
            config = config_from_args(args)
            run_dir = new_run_dir(args.runs_dir, args.run_id, job)
        run = train(config, run_dir, resume=bool(args.resume), argv=sys.argv if argv is None else argv)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None
    print(f"run {run.run_dir}: {run.steps} steps, exported {run.weights_path}")
    if run.best_path is not None:
        print(f"best CLIP score: {run.best_path}")
    if run.parameters is not None:
        print(run.parameters.describe())
    if run.skipped_images:
        print(f"skipped {run.skipped_images} unreadable image(s); see {run.run_dir / 'skipped_images.json'}")
    if run.metrics:
        final = run.metrics[-1].items()
        print("final metrics: " + ", ".join(f"{k}={v:.4g}" for k, v in final if isinstance(v, (int, float))))
    if args.archive:
        try:
            published = archive_run(run, args.store, args.archive_weights, args.overwrite)
        except (ValueError, FileNotFoundError) as error:  # PublishConflict, a LoRA that does not fit
            raise SystemExit(f"error: {error} (the run and its export stay in {run.run_dir})") from None
        announce(published, args.deploy, args.workdir)
    return run


def archive_run(run: TrainedRun, store: Path, which: str = "best", overwrite: bool = False) -> Published:
    """The run's exported weights (`which`: runs.chosen_weights) published into its weights
    root under the capability's naming (`overwrite`: replacing another file of that name), and
    the next version of the capability built from there with the run's lineage."""
    config, exported = run.config, chosen_weights(run, which)
    return publish(
        config.capability,
        exported,
        trained_weights_file(config.capability, config.style),
        weights_layout(config.weights_dir).root,
        store,
        lineage_of(run, exported),
        base_model_dir=run.base_model_dir,
        overwrite=overwrite,
    )
