"""LoRA fine-tuning on the tiny SD 1.5: the loss falls, resume is exact, the export loads into
the engine with its rank and alpha, metrics and the run folder are written."""

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from imagelab.diffusion.lora import read_lora, save_lora
from imagelab.diffusion.tiny import _attention_projection_shapes
from training.checkpoints import latest_checkpoint
from training.lora.config import TARGET_MODULES, LoraTrainConfig
from training.lora.data import class_folder_dataset, prepare_pixels
from training.lora.train import METRIC_COLUMNS, _export_best, train_lora
from training.lora.trainer import LoraTrainer, load_components
from training.runs import best_row, chosen_weights, lineage_of
from training.schedule import lr_multiplier

SMALL = dict(
    resolution_px=32,
    batch_size=2,
    grad_accum_steps=2,
    learning_rate=1e-2,
    rank=2,
    lora_alpha=8.0,
    lora_dropout=0.1,
    lr_schedule="cosine",
    warmup_steps=2,
    mixed_precision="no",
    max_steps=6,
    checkpoint_every=0,
    validation_images=1,
    validation_steps=1,
    augmentation={"variants": 1},
)


def config(shapes, tiny_sd15, weights_root, **overrides) -> LoraTrainConfig:
    return LoraTrainConfig(data_dir=shapes, model_dir=tiny_sd15, weights_dir=weights_root, **{**SMALL, **overrides})


@pytest.fixture(scope="module")
def finished_run(shapes, tiny_sd15, weights_root, tmp_path_factory):
    """One uninterrupted 6-step run (3 epochs of 4 micro-batches of 2, accumulated by 2)."""
    return train_lora(config(shapes, tiny_sd15, weights_root), tmp_path_factory.mktemp("runs") / "whole", argv=["x"])


@pytest.mark.parametrize("mixed_precision", ["no", "auto"])
def test_loss_is_finite_and_falls_on_a_fixed_batch(shapes, tiny_sd15, mixed_precision):
    cfg = LoraTrainConfig(data_dir=shapes, resolution_px=32, learning_rate=1e-2, mixed_precision=mixed_precision)
    trainer = LoraTrainer(cfg, load_components(tiny_sd15), total_steps=20)
    examples = class_folder_dataset(shapes).train[:2]
    posteriors = torch.stack(
        [trainer.encode_posterior(prepare_pixels(e, 32, cfg.augmentation, 0, 0)) for e in examples]
    )
    prompts = [e.prompts[0] for e in examples]
    # The same generator seed each step: the same latents, noise and timesteps, a fixed batch.
    losses = [trainer.step([(posteriors, prompts)], torch.Generator().manual_seed(5)).loss for _ in range(20)]
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.9 * losses[0], losses
    assert sum(b < a for a, b in zip(losses, losses[1:])) >= 17, losses


def test_resume_after_ctrl_c_reproduces_the_uninterrupted_run(finished_run, shapes, tiny_sd15, weights_root, tmp_path):
    cfg = config(shapes, tiny_sd15, weights_root)
    run_dir = tmp_path / "interrupted"

    def interrupt(step, stats):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_lora(cfg, run_dir, on_step=interrupt)
    assert latest_checkpoint(run_dir).name == "step_0000003"
    resumed = train_lora(cfg, run_dir, resume=True)

    whole, _ = read_lora(finished_run.weights_path)
    again, _ = read_lora(resumed.weights_path)
    assert whole.keys() == again.keys()
    for module in whole:
        assert torch.equal(whole[module][0], again[module][0]), module
        assert torch.equal(whole[module][1], again[module][1]), module
    assert resumed.metrics == finished_run.metrics
    assert resumed.best_path.name == finished_run.best_path.name
    assert resumed.best_path.read_bytes() == finished_run.best_path.read_bytes()


def test_export_keeps_rank_alpha_and_every_attention_projection(finished_run, tiny_sd15):
    weights, alpha = read_lora(finished_run.weights_path)
    unet_config = json.loads((tiny_sd15 / "unet" / "config.json").read_text())
    assert set(weights) == set(_attention_projection_shapes(unet_config))
    assert alpha == 8.0
    assert {down.shape[0] for down, _ in weights.values()} == {2}
    assert any(up.abs().max() > 0 for _, up in weights.values())  # B starts at zero: it trained


def test_exported_lora_changes_the_engine_output_with_its_alpha_over_rank_scale(finished_run, tiny_sd15, tmp_path):
    from imagelab.diffusion.engine import DiffusionEngine
    from imagelab.diffusion.jobs import DiffusionSettings, GenerationJob

    weights, alpha = read_lora(finished_run.weights_path)
    # alpha 8 at rank 2 is a scale of 4: the same as alpha == rank with the up factors x4.
    unit_scale = save_lora(tmp_path / "x4.safetensors", {m: (d, u * 4) for m, (d, u) in weights.items()}, alpha=2.0)
    engine = DiffusionEngine(
        DiffusionSettings(tiny_sd15, dtype="float32", adapters={"trained": finished_run.weights_path, "x4": unit_scale})
    )

    def image(style):
        job = GenerationJob(prompt="a photo of a circle", style=style, seed=1, steps=2, width=64, height=64)
        return np.asarray(engine.generate([job])[0].images[0]).astype(np.int16)

    base, trained, x4 = image("none"), image("trained"), image("x4")
    assert np.abs(trained - base).mean() > 0.5
    assert np.abs(trained - x4).max() <= 1


def test_run_folder_has_config_metrics_plot_and_samples(finished_run):
    run_dir = finished_run.run_dir
    recorded = json.loads((run_dir / "config.json").read_text())
    assert recorded["run_id"] == "whole" and recorded["argv"] == ["x"]
    assert recorded["config"]["rank"] == 2 and recorded["config"]["augmentation"]["variants"] == 1
    with open(run_dir / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == METRIC_COLUMNS
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    for row in rows:
        for column in ("train_loss", "val_loss", "clip_score", "lr", "grad_norm"):
            assert np.isfinite(float(row[column])), (column, row)
    plot = Image.open(run_dir / "metrics.png")
    assert plot.format == "PNG" and plot.size[0] >= 320
    assert len(np.unique(np.asarray(plot.convert("L")))) > 2  # something was drawn
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == [
        "epoch_001.png",
        "epoch_002.png",
        "epoch_003.png",
    ]


def test_latents_are_cached_once_per_image_and_variant(finished_run):
    # 8 training images x 2 variants (plain, augmented) + 2 validation images (plain only).
    assert len(list((finished_run.run_dir / "latents").glob("*.safetensors"))) == 8 * 2 + 2


def test_unreadable_images_are_skipped_and_counted(finished_run):
    report = json.loads((finished_run.run_dir / "skipped_images.json").read_text())
    assert report["count"] == 1 == finished_run.skipped_images
    assert report["images"][0]["path"].endswith("broken_0.png")


def test_bad_config_is_refused_with_the_field_named(shapes):
    with pytest.raises(ValueError, match="txt2img needs --style"):
        LoraTrainConfig(data_dir=shapes, capability="txt2img")
    with pytest.raises(ValueError, match="resolution_px"):
        LoraTrainConfig(data_dir=shapes, resolution_px=30)
    with pytest.raises(ValueError, match="fp16 needs a CUDA"):
        LoraTrainConfig(data_dir=shapes, mixed_precision="fp16")


def test_the_seeds_recipe_is_the_default(shapes):
    cfg = LoraTrainConfig(data_dir=shapes)
    assert (cfg.rank, cfg.lora_alpha, cfg.lora_dropout) == (2, 16.0, 0.0)  # scale alpha/rank = 8
    assert TARGET_MODULES == ("to_q", "to_k", "to_v", "to_out.0")
    assert (cfg.val_fraction, cfg.resolution_px) == (0.2, 256)
    assert cfg.augmentation.variants > 0
    assert cfg.lr_schedule == "cosine" and lr_multiplier(99, cfg.lr_schedule, cfg.warmup_steps, 100) < 0.01


def test_best_clip_epoch_is_exported_beside_the_last(finished_run):
    scores = [row["clip_score"] for row in finished_run.metrics]
    best_epoch = scores.index(max(scores)) + 1
    best_name = f"clip-{max(scores):.3f}.safetensors"
    export = finished_run.run_dir / "export"
    assert sorted(p.name for p in export.iterdir()) == sorted(["animals.safetensors", best_name])
    assert finished_run.best_path == export / best_name
    weights, alpha = read_lora(finished_run.best_path)
    assert alpha == 8.0 and {down.shape[0] for down, _ in weights.values()} == {2}
    # The best is the weights after its epoch: the last export only when the best epoch is the last.
    same = finished_run.best_path.read_bytes() == finished_run.weights_path.read_bytes()
    assert same == (best_epoch == len(scores))


def test_archive_takes_the_best_unless_told_otherwise(finished_run):
    assert chosen_weights(finished_run) == finished_run.best_path
    assert chosen_weights(finished_run, "last") == finished_run.weights_path
    assert chosen_weights(finished_run._replace(best_path=None)) == finished_run.weights_path
    with pytest.raises(ValueError, match="weights must be one of"):
        chosen_weights(finished_run, "worst")
    lineage = lineage_of(finished_run)
    assert lineage["exported"]["file"] == finished_run.best_path.name
    assert lineage["best_by_clip_score"]["clip_score"] == max(r["clip_score"] for r in finished_run.metrics)
    assert lineage_of(finished_run, finished_run.weights_path)["exported"]["file"] == "animals.safetensors"


def test_trainable_parameter_share_is_the_loras_part_of_the_unet(finished_run, tiny_sd15):
    from diffusers import UNet2DConditionModel

    recorded = json.loads((finished_run.run_dir / "config.json").read_text())["parameters"]
    weights, _ = read_lora(finished_run.weights_path)
    lora_parameters = sum(down.numel() + up.numel() for down, up in weights.values())
    base = UNet2DConditionModel.from_pretrained(tiny_sd15, subfolder="unet")
    assert recorded["trainable"] == lora_parameters == finished_run.parameters.trainable
    assert recorded["total"] == sum(p.numel() for p in base.parameters()) + lora_parameters
    assert recorded["share"] == pytest.approx(lora_parameters / recorded["total"]) and 0 < recorded["share"] < 0.5


def test_metrics_are_also_a_spreadsheet(finished_run):
    from openpyxl import load_workbook

    sheet = load_workbook(finished_run.run_dir / "metrics.xlsx")["metrics"]
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0] == METRIC_COLUMNS
    # Spreadsheets keep 15 significant digits.
    assert len(rows) == 1 + len(finished_run.metrics)
    for cells, row in zip(rows[1:], finished_run.metrics):
        assert dict(zip(METRIC_COLUMNS, cells)) == pytest.approx(row, rel=1e-13)


def test_the_best_epoch_is_the_first_with_the_highest_finite_clip_score(tmp_path):
    rows = [{"epoch": e, "clip_score": s} for e, s in enumerate([1.0, 3.0, 3.0, None, float("nan"), 2.0], 1)]
    assert best_row(rows)["epoch"] == 2
    assert best_row([{"epoch": 1, "clip_score": None}]) is None

    class Trainer:
        def __init__(self, scale):
            self.scale = scale

        def lora_weights(self):
            return {"down_blocks.0.attn.to_q": (torch.ones(2, 4) * self.scale, torch.ones(4, 2))}

    cfg = LoraTrainConfig(data_dir=tmp_path, rank=2, lora_alpha=16.0)
    first = _export_best(tmp_path / "export", Trainer(1.0), cfg, 12.3456)
    second = _export_best(tmp_path / "export", Trainer(2.0), cfg, 20.0)
    assert (first.name, second.name) == ("clip-12.346.safetensors", "clip-20.000.safetensors")
    assert [p.name for p in (tmp_path / "export").iterdir()] == [second.name]  # one best is kept
    assert torch.equal(read_lora(second)[0]["down_blocks.0.attn.to_q"][0], torch.full((2, 4), 2.0))
