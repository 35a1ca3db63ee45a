"""Losses of Gatys, Ecker and Bethge 2016, "Image Style Transfer Using Convolutional Neural
Networks", plus a total-variation prior (Mahendran and Vedaldi 2015).

Content and style terms are relative errors: each layer's squared error is divided by the
squared norm of its target. For one content/style pair those norms are constants, so this is
Gatys' objective with its per-layer weights set from the targets. The point is that one set of
weights then means the same for the real VGG19, a narrow stand-in, either pooling mode and any
input scale; Gatys' alpha/beta ratios (1e-3, 1e-4) are tied to Caffe's 0-255 inputs and do not
carry over to torchvision's normalised ones anyway.
"""

from typing import NamedTuple

import torch

from imagelab.neural_style.vgg import VGG19Features

# Keeps the relative errors finite when a target is all zeros (e.g. a blank image).
_EPS = 1e-8


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Channel correlations G_ij = sum_k F_ik F_jk / (C * H * W), per batch element.

    Normalised by the number of entries so that images of different sizes (the style image is
    usually not the content's size) give comparable Gram matrices.
    """
    batch, channels, height, width = features.shape  # (B, C, H, W)
    flat = features.reshape(batch, channels, height * width)  # (B, C, H*W)
    return flat @ flat.transpose(1, 2) / (channels * height * width)  # (B, C, C)


def _relative_error(value: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (value - target).pow(2).sum() / (target.pow(2).sum() + _EPS)


def content_loss(features: tuple[torch.Tensor, ...], targets: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Mean over content layers of |F - P|^2 / |P|^2 (Gatys eq. 1, normalised)."""
    return torch.stack([_relative_error(f, p) for f, p in zip(features, targets, strict=True)]).mean()


def style_loss(features: tuple[torch.Tensor, ...], target_grams: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Mean over style layers of |G - A|^2 / |A|^2: Gatys eq. 4-5 with equal weights w_l = 1/L."""
    errors = [_relative_error(gram_matrix(f), a) for f, a in zip(features, target_grams, strict=True)]
    return torch.stack(errors).mean()


def total_variation_loss(image: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between vertical and horizontal neighbours of (B, C, H, W)."""
    vertical = (image[:, :, 1:, :] - image[:, :, :-1, :]).pow(2).mean()
    horizontal = (image[:, :, :, 1:] - image[:, :, :, :-1]).pow(2).mean()
    return vertical + horizontal


class LossTerms(NamedTuple):
    content: torch.Tensor  # scalar
    style: torch.Tensor  # scalar
    total_variation: torch.Tensor  # scalar


class GatysLoss:
    """Computes the content and style targets once, then the loss terms of any image.

    `content` and `style_image` are (1, 3, H, W) RGB in [0, 1]; the style image may have another
    size. Images passed to the call must have the content's size.
    """

    def __init__(
        self,
        features: VGG19Features,
        content: torch.Tensor,
        style_image: torch.Tensor,
        pooling: str = "avg",
    ):
        self.features = features
        self.pooling = pooling
        with torch.no_grad():
            self.content_targets = features(content, pooling).content
            self.style_grams = tuple(gram_matrix(f) for f in features(style_image, pooling).style)

    def __call__(self, image: torch.Tensor) -> LossTerms:
        maps = self.features(image, self.pooling)
        return LossTerms(
            content=content_loss(maps.content, self.content_targets),
            style=style_loss(maps.style, self.style_grams),
            total_variation=total_variation_loss(image),
        )
