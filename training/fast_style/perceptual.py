"""Johnson et al. 2016's perceptual loss, as pytorch/examples' fast_neural_style computes it:
the content term is the MSE of VGG16 relu2_2 features of the output and its input; the style
term sums, over relu1_2, relu2_2, relu3_3 and relu4_3, the MSE of the output's Gram matrices
(imagelab.neural_style.losses.gram_matrix, normalised by C*H*W) to the style image's."""

from typing import NamedTuple

import torch
from torch.nn import functional as F

from imagelab.neural_style.losses import gram_matrix
from training.fast_style.vgg16 import Vgg16Features, normalize_batch


class PerceptualTerms(NamedTuple):
    content: torch.Tensor  # scalar, weighted
    style: torch.Tensor  # scalar, weighted

    @property
    def total(self) -> torch.Tensor:
        return self.content + self.style


class PerceptualLoss:
    """The style image's Gram matrices are computed once; calls score a batch of outputs."""

    def __init__(self, vgg: Vgg16Features, style: torch.Tensor, content_weight: float, style_weight: float):
        """`style`: (1, 3, H, W) RGB in 0-255."""
        self.vgg = vgg
        self.content_weight, self.style_weight = content_weight, style_weight
        with torch.no_grad():
            self.style_grams = [gram_matrix(y) for y in vgg(normalize_batch(style))]

    def __call__(self, output: torch.Tensor, content: torch.Tensor) -> PerceptualTerms:
        """`output` (TransformerNet's) and `content` (its input): (B, 3, H, W) in 0-255."""
        features_y, features_x = self.vgg(normalize_batch(output)), self.vgg(normalize_batch(content))
        content_loss = self.content_weight * F.mse_loss(features_y.relu2_2, features_x.relu2_2)
        batch = output.shape[0]
        style_loss = self.style_weight * sum(
            F.mse_loss(gram_matrix(fy), gs.expand(batch, -1, -1)) for fy, gs in zip(features_y, self.style_grams)
        )
        return PerceptualTerms(content_loss, style_loss)
