"""Fast-style training: a few steps on tiny images with the tiny VGG16 give a state dict the
server's loader accepts; the perceptual loss pieces follow Johnson et al."""

import json

import pytest
import torch
from PIL import Image

from imagelab.fast_style.weights import load_transformer_net
from imagelab.neural_style.losses import gram_matrix
from imagelab.weights_io import sha256_of
from training.fast_style.config import FastStyleTrainConfig
from training.fast_style.train import train_fast_style
from training.fast_style.vgg16 import RELU_INDEX, load_vgg16_features, synthesize_tiny_vgg16
from training.runs import chosen_weights, lineage_of


@pytest.fixture(scope="module")
def fast_run(shapes, tmp_path_factory):
    root = tmp_path_factory.mktemp("fast_style")
    style_image = root / "style.png"
    Image.radial_gradient("L").convert("RGB").resize((48, 48)).save(style_image)
    config = FastStyleTrainConfig(
        shapes,
        style_image,
        "swirl",
        weights_dir=root / "weights",
        image_size_px=32,
        batch_size=2,
        max_steps=4,
        style_weight=1e6,
        content_weight=1e2,
        checkpoint_every=2,
    )
    return train_fast_style(config, root / "runs" / "swirl", argv=[])


def test_trained_style_loads_with_the_servers_loader(fast_run):
    model = load_transformer_net(fast_run.weights_path)
    out = model(torch.rand(1, 3, 32, 32) * 255)
    assert out.shape == (1, 3, 32, 32) and torch.isfinite(out).all()
    assert fast_run.weights_path.name == "swirl.safetensors" and fast_run.steps == 4


def test_run_folder_records_metrics_config_and_skips(fast_run):
    rows = (fast_run.run_dir / "metrics.csv").read_text().splitlines()
    assert rows[0] == "epoch,step,content_loss,style_loss,total_loss,lr" and len(rows) == 2
    recorded = json.loads((fast_run.run_dir / "config.json").read_text())
    assert recorded["vgg16_synthetic"] is True and recorded["config"]["style"] == "swirl"
    assert json.loads((fast_run.run_dir / "skipped_images.json").read_text())["count"] == 1
    assert (fast_run.run_dir / "metrics.png").is_file()
    from openpyxl import load_workbook

    sheet = load_workbook(fast_run.run_dir / "metrics.xlsx")["metrics"]
    assert [c.value for c in sheet[1]] == rows[0].split(",") and sheet.max_row == 2
    assert fast_run.parameters.share == 1.0 and fast_run.parameters.trainable > 0  # all of TransformerNet trains


def test_both_jobs_hand_on_the_same_shape_and_lineage(fast_run):
    lineage = lineage_of(fast_run)
    assert (fast_run.job, lineage["job"], lineage["run_id"]) == ("fast_style", "fast_style", "swirl")
    assert lineage["exported"] == {"file": "swirl.safetensors", "sha256": sha256_of(fast_run.weights_path)}
    assert lineage["config"]["style"] == "swirl" and "base_model" not in lineage
    assert chosen_weights(fast_run) == fast_run.weights_path  # no CLIP score: the last is the best there is


def test_tiny_vgg16_has_torchvision_keys_and_is_deterministic(tmp_path):
    a = synthesize_tiny_vgg16(tmp_path / "a.safetensors")
    b = synthesize_tiny_vgg16(tmp_path / "b.safetensors")
    assert a.read_bytes() == b.read_bytes()
    features = load_vgg16_features(a)(torch.rand(1, 3, 32, 32))
    assert [f.shape[1] for f in features] == [8, 16, 32, 64]
    assert RELU_INDEX == {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22}


def test_gram_matrix_is_normalised_by_c_h_w():
    features = torch.ones(2, 3, 4, 5)
    assert torch.allclose(gram_matrix(features), torch.full((2, 3, 3), 20 / 60))
