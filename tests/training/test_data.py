"""Datasets: stratified seeded split, skipped images, augmentation, prompts, schedules."""

import pytest
import torch

from training.lora.config import Augmentation
from training.lora.data import class_folder_dataset, class_prompts, pick_prompt, prepare_pixels, style_dataset
from training.schedule import lr_multiplier


def test_class_split_is_stratified_seeded_and_skips_unreadable(shapes):
    data = class_folder_dataset(shapes, val_fraction=0.2, seed=0)
    assert data.labels == ("circle", "square")
    assert [e.label for e in data.val].count("circle") == 1 and [e.label for e in data.val].count("square") == 1
    assert len(data.train) == 8
    assert [p.name for p, _ in data.skipped] == ["broken_0.png"]
    assert class_folder_dataset(shapes, seed=0) == data
    assert {e.path for e in class_folder_dataset(shapes, seed=3).val} != {e.path for e in data.val}


def test_style_dataset_prompts_name_the_token(shapes):
    data = style_dataset(shapes / "square", token="sks")
    assert all(p.startswith("a painting in the style of sks") for e in data.train for p in e.prompts)
    assert len(data.val) == 1 and len(data.train) == 4


def test_class_prompts_use_the_servers_wording(shapes):
    assert class_prompts("elephant")[0] == "a photo of an elephant"
    assert class_prompts("polar_bear")[0] == "a photo of a polar bear"
    example = class_folder_dataset(shapes).train[0]
    picked = {pick_prompt(example, epoch, seed=0) for epoch in range(20)}
    assert picked <= set(class_prompts(example.label)) and len(picked) > 1
    assert [pick_prompt(example, e, 0) for e in range(5)] == [pick_prompt(example, e, 0) for e in range(5)]


def test_pixels_are_cropped_normalised_and_augmented_reproducibly(shapes):
    example = class_folder_dataset(shapes).train[0]
    augmentation = Augmentation(variants=2)
    plain = prepare_pixels(example, 32, augmentation, 0, seed=0)
    assert plain.shape == (3, 32, 32) and plain.min() >= -1 and plain.max() <= 1 and plain.min() < 0 < plain.max()
    augmented = prepare_pixels(example, 32, augmentation, 1, seed=0)
    assert not torch.equal(augmented, plain)
    assert torch.equal(augmented, prepare_pixels(example, 32, augmentation, 1, seed=0))
    assert not torch.equal(augmented, prepare_pixels(example, 32, augmentation, 2, seed=0))
    assert [augmentation.variant_for_epoch(e) for e in range(4)] == [0, 1, 2, 0]


def test_lr_schedules_warm_up_then_hold_or_decay():
    assert [lr_multiplier(s, "constant", 2, 10) for s in (0, 1, 2, 9)] == [0.5, 1.0, 1.0, 1.0]
    cosine = [lr_multiplier(s, "cosine", 2, 10) for s in range(10)]
    assert cosine[:3] == [0.5, 1.0, 1.0] and cosine[6] == pytest.approx(0.5)
    assert all(b <= a for a, b in zip(cosine[2:], cosine[3:]))
