"""The two training command lines share one flow (training/job_cli.py): the same run, resume
and archive options, and bad arguments end with a message, not a traceback."""

import pytest

from training.fast_style import cli as fast_style_cli
from training.lora import cli as lora_cli


@pytest.mark.parametrize("cli", [lora_cli, fast_style_cli])
def test_both_clis_take_the_same_run_options(cli):
    args = cli.parser().parse_args([])
    assert (args.archive, args.archive_weights, args.overwrite, args.deploy, args.resume) == (
        False,
        "best",
        False,
        False,
        None,
    )
    assert cli.parser().parse_args(["--archive", "--archive-weights", "last"]).archive_weights == "last"


@pytest.mark.parametrize("cli", [lora_cli, fast_style_cli])
def test_deploy_without_archive_is_refused(cli):
    with pytest.raises(SystemExit, match="--deploy needs --archive"):
        cli.main(["--deploy"])


def test_missing_inputs_and_unknown_runs_are_named(tmp_path):
    with pytest.raises(SystemExit, match="--data-dir is required"):
        lora_cli.main(["--runs-dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="--content-dir, --style-image and --style are required"):
        fast_style_cli.main(["--runs-dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="no training run 'nope'"):
        fast_style_cli.main(["--resume", "nope", "--runs-dir", str(tmp_path)])


def test_the_recipe_defaults_reach_the_command_line():
    args = lora_cli.parser().parse_args([])
    assert (args.rank, args.lora_alpha, args.lora_dropout, args.lr_schedule) == (2, 16.0, 0.0, "cosine")
    assert args.augment_variants > 0 and args.resolution_px == 256 and args.val_fraction == 0.2
