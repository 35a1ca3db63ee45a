"""`python -m training.lora --publish-adapter` (issue 19.1): a tiny txt2img run's LoRA lands in
the adapters folder as `{folder}/txt2img/{name}.safetensors` (best by CLIP score unless told
otherwise, its metadata and class list intact), written atomically, and the folder logic the
workers run (AdapterFolder) serves it."""

import pytest

from imagelab.diffusion.adapters import AdapterFolder
from imagelab.diffusion.animals import read_lora_classes
from imagelab.weights_io import sha256_of
from training.lora import cli as lora_cli
from training.publish import PublishConflict, publish_adapter

SMALL = [
    "--resolution", "32", "--batch-size", "2", "--max-steps", "6", "--epochs", "3",
    "--checkpoint-every", "0", "--validation-images", "1", "--validation-steps", "1",
    "--mixed-precision", "no", "--augment-variants", "1", "--threads", "1",
]  # fmt: skip


def train_argv(shapes, tiny_sd15, weights_root, runs, run_id, adapters, *extra) -> list:
    return [
        "--data-dir", str(shapes), "--model-dir", str(tiny_sd15), "--weights", str(weights_root),
        "--capability", "txt2img", "--style", "dusk", "--dataset", "classes",
        "--runs-dir", str(runs), "--run-id", run_id, "--adapters-dir", str(adapters), *SMALL, *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def published(shapes, tiny_sd15, weights_root, tmp_path_factory):
    """One run published with the defaults (best, named as --style) and the same run's last
    weights published under another name."""
    runs, adapters = tmp_path_factory.mktemp("runs"), tmp_path_factory.mktemp("adapters")
    lora_cli.main(train_argv(shapes, tiny_sd15, weights_root, runs, "run", adapters, "--publish-adapter"))
    return runs / "run", adapters / "txt2img"


def test_the_best_export_is_published_whole_under_the_style_name(published):
    run_dir, folder = published
    [best] = (run_dir / "export").glob("clip-*.safetensors")
    # 3 epochs on this data: the best CLIP score is not the last epoch's, so the files differ.
    assert best.read_bytes() != (run_dir / "export" / "dusk.safetensors").read_bytes()
    target = folder / "dusk.safetensors"
    assert target.read_bytes() == best.read_bytes()
    assert read_lora_classes(target).names == ("circle", "square")  # the metadata travels
    assert [p.name for p in folder.iterdir()] == ["dusk.safetensors"]  # no staged file left behind


def test_the_folder_the_workers_watch_serves_the_published_file(published, tiny_sd15):
    run_dir, folder = published
    watched = AdapterFolder(folder, tiny_sd15 / "unet")
    watched.refresh()
    assert dict(watched.refused) == {}
    info = watched.usable["dusk"]
    assert (info.source, info.sha256, info.rank) == ("folder", sha256_of(folder / "dusk.safetensors"), 2)


def test_last_weights_and_another_name_when_asked(shapes, tiny_sd15, weights_root, tmp_path):
    adapters = tmp_path / "adapters"
    argv = train_argv(shapes, tiny_sd15, weights_root, tmp_path / "runs", "run", adapters)
    lora_cli.main([*argv, "--publish-adapter", "--adapter-weights", "last", "--adapter-name", "Dusk-2"])
    published = adapters / "txt2img" / "Dusk-2.safetensors"
    assert published.read_bytes() == (tmp_path / "runs" / "run" / "export" / "dusk.safetensors").read_bytes()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--adapter-name", "../x"], "must match"),
        (["--adapter-name", "x" * 65], "must match"),
        (["--adapter-name", "None"], "reserved"),
        (["--adapter-name", "monet"], "archived style"),
        (["--capability", "animals", "--style", "animals"], "only txt2img"),
    ],
)
def test_a_name_the_folder_would_refuse_is_refused_before_training(
    shapes, tiny_sd15, weights_root, tmp_path, extra, message
):
    argv = train_argv(shapes, tiny_sd15, weights_root, tmp_path / "runs", "run", tmp_path / "adapters")
    with pytest.raises(SystemExit, match=message):
        lora_cli.main([*argv, "--publish-adapter", *extra])
    assert not (tmp_path / "runs").exists() and not (tmp_path / "adapters").exists()


def test_another_file_of_that_name_is_replaced_only_when_asked(published, tmp_path, tiny_sd15):
    run_dir, folder = published
    best = next((run_dir / "export").glob("clip-*.safetensors"))
    last = run_dir / "export" / "dusk.safetensors"
    first = publish_adapter("txt2img", best, "twice", tmp_path, base_model_dir=tiny_sd15)
    assert publish_adapter("txt2img", best, "twice", tmp_path) == first  # the same bytes: nothing to do
    with pytest.raises(PublishConflict, match="overwrite"):
        publish_adapter("txt2img", last, "twice", tmp_path)
    assert first.read_bytes() == best.read_bytes()
    publish_adapter("txt2img", last, "twice", tmp_path, overwrite=True)
    assert first.read_bytes() == last.read_bytes()


def test_a_lora_that_does_not_fit_the_base_model_is_refused_before_anything_is_written(tmp_path, tiny_sd15):
    import torch

    from imagelab.diffusion.lora import save_lora

    misfit = save_lora(tmp_path / "wide.safetensors", {"no.such.layer": (torch.zeros(2, 8), torch.zeros(8, 2))}, 2.0)
    with pytest.raises(ValueError, match="no.such.layer"):
        publish_adapter("txt2img", misfit, "wide", tmp_path / "adapters", base_model_dir=tiny_sd15)
    assert not (tmp_path / "adapters").exists()
