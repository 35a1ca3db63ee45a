import dataclasses

import pytest

from imagelab.neural_style import NeuralStyleConfig
from imagelab.validation import SEED_RANGE


def test_defaults_are_valid_and_frozen():
    config = NeuralStyleConfig()
    assert (config.optimizer, config.init, config.pooling) == ("lbfgs", "content", "avg")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.steps = 5


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("steps", 0, r"steps must be an integer in \[1, 1000\]"),
        ("steps", 1001, r"steps must be an integer in \[1, 1000\]"),
        ("steps", 2.5, "steps"),
        ("steps", True, "steps"),
        ("max_side_px", 63, r"max_side_px must be an integer in \[64, 1024\]"),
        ("max_side_px", 1025, "max_side_px"),
        ("content_weight", -1.0, r"content_weight must be a number in \[0, 1e\+06\]"),
        ("content_weight", 1e6 + 1, "content_weight"),
        ("style_weight", float("nan"), "style_weight"),
        ("style_weight", float("inf"), "style_weight"),
        ("tv_weight", "1", "tv_weight"),
        ("init", "random", r"init must be one of \['content', 'noise'\]"),
        ("optimizer", "sgd", r"optimizer must be one of \['lbfgs', 'adam'\]"),
        ("seed", -1, "seed"),
        ("seed", SEED_RANGE[1] + 1, "seed"),
        ("preserve_color", "yes", "preserve_color"),
        ("time_budget_s", 0, r"time_budget_s must be None or a number in \(0, 3600\]"),
        ("time_budget_s", float("nan"), "time_budget_s"),
        ("pooling", "min", "pooling"),
        ("adam_learning_rate", 0.0, "adam_learning_rate"),
    ],
)
def test_invalid_values_raise_value_error_naming_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        NeuralStyleConfig(**{field: value})


def test_content_and_style_weight_cannot_both_be_zero():
    with pytest.raises(ValueError, match="content_weight and style_weight"):
        NeuralStyleConfig(content_weight=0, style_weight=0)


def test_boundary_values_are_accepted():
    NeuralStyleConfig(steps=1, max_side_px=64, time_budget_s=3600, seed=SEED_RANGE[1], style_weight=1e6)
    NeuralStyleConfig(steps=1000, max_side_px=1024, content_weight=0, tv_weight=0, init="noise", optimizer="adam")
