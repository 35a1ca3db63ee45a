"""Optimisation style transfer over VGG19 features (Gatys, Ecker and Bethge 2016)."""

from imagelab.neural_style.config import NeuralStyleConfig
from imagelab.neural_style.gatys import TransferResult, transfer
from imagelab.neural_style.losses import (
    GatysLoss,
    LossTerms,
    content_loss,
    gram_matrix,
    style_loss,
    total_variation_loss,
)
from imagelab.neural_style.vgg import (
    CONTENT_LAYERS,
    STYLE_LAYERS,
    FeatureMaps,
    VGG19Features,
    load_vgg19_features,
    synthesize_tiny_vgg19,
)

__all__ = [
    "CONTENT_LAYERS",
    "STYLE_LAYERS",
    "FeatureMaps",
    "GatysLoss",
    "LossTerms",
    "NeuralStyleConfig",
    "TransferResult",
    "VGG19Features",
    "content_loss",
    "gram_matrix",
    "load_vgg19_features",
    "style_loss",
    "synthesize_tiny_vgg19",
    "total_variation_loss",
    "transfer",
]
