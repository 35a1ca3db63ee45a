"""Style transfer by image optimisation (Gatys, Ecker and Bethge 2016, "Image Style Transfer
Using Convolutional Neural Networks"): start from the content image (or noise) and descend on
the pixels until their VGG19 features match the content's and their Gram matrices the style's.
"""

import math
import time
from collections.abc import Callable
from typing import NamedTuple

import torch
from PIL import Image

from imagelab.neural_style.color import as_grey_rgb, luminance, match_luminance, with_chroma_of
from imagelab.neural_style.config import NeuralStyleConfig
from imagelab.neural_style.images import check_rgb_image, pil_to_tensor, resize_to_max_side, tensor_to_pil
from imagelab.neural_style.losses import GatysLoss, LossTerms
from imagelab.neural_style.vgg import VGG19Features

# on_step(step, of, content_loss, style_loss), step counted from 1.
StepCallback = Callable[[int, int, float, float], None]

# The losses see the image clamped to [0, 1], so the loss tracked is that of the image shown.
# Clamping gives no gradient to pixels beyond the range, so without help they would stay stuck
# there; this quadratic penalty pulls them back. Clamping in place between steps instead would
# break L-BFGS's curvature pairs (losses then rise and fall); 100 kept the descent monotone.
_RANGE_PENALTY_WEIGHT = 100.0

# L-BFGS memory; 100 pairs as torch's default, a few MB even at 1024 px.
_LBFGS_HISTORY = 100


class TransferResult(NamedTuple):
    image: Image.Image  # RGB, the content's aspect, longest side config.max_side_px
    steps_done: int
    truncated: bool  # the time budget or deadline ended the run early
    content_loss: float  # unweighted relative errors of the returned image
    style_loss: float
    loss_history: tuple[float, ...]  # weighted total loss at each step, in order


def transfer(
    content: Image.Image,
    style_image: Image.Image,
    config: NeuralStyleConfig,
    features: VGG19Features,
    on_step: StepCallback | None = None,
    deadline_s: float | None = None,
) -> TransferResult:
    """Paint `content` in the style of `style_image`.

    Runs on the device of `features`. A step is one evaluation of the loss and its gradient:
    L-BFGS is driven one iteration per step without line search (jcjohnson/neural-style uses
    none either), so a step costs one forward and one backward pass for either optimizer.
    on_step is called after each step with the losses of the image that step evaluated; after
    the last step, the last update gets one forward-only evaluation. The image with the lowest
    total loss seen is returned. When `time.monotonic()` passes
    `deadline_s`, or config.time_budget_s has elapsed, the run stops after the current step
    and returns that best image with truncated=True; at least one step always runs.
    Works when the caller is under torch.inference_mode() (TorchServe handlers are).
    """
    check_rgb_image("content", content)
    check_rgb_image("style_image", style_image)
    if not isinstance(features, VGG19Features):
        raise ValueError(f"features must be a VGG19Features, got {type(features).__name__}")
    if any(p.is_inference() for p in features.parameters()):
        raise ValueError("features were built under torch.inference_mode; use load_vgg19_features")
    deadline = math.inf if deadline_s is None else deadline_s
    if config.time_budget_s is not None:
        deadline = min(deadline, time.monotonic() + config.time_budget_s)
    content = resize_to_max_side("content", content, config.max_side_px)
    style_image = resize_to_max_side("style_image", style_image, config.max_side_px)
    # Gradients are needed even under the caller's inference mode; every tensor below is made
    # from PIL images inside this block, so none is an inference tensor.
    with torch.inference_mode(False), torch.enable_grad():
        return _optimise(content, style_image, config, features, on_step, deadline)


def _optimise(
    content: Image.Image,
    style_image: Image.Image,
    config: NeuralStyleConfig,
    features: VGG19Features,
    on_step: StepCallback | None,
    deadline: float,
) -> TransferResult:
    device = features.mean.device
    content_rgb = pil_to_tensor(content, device)  # (1, 3, H, W)
    style_rgb = pil_to_tensor(style_image, device)  # (1, 3, H', W')
    if config.preserve_color:
        content_y = luminance(content_rgb)  # (1, 1, H, W)
        style_y = match_luminance(luminance(style_rgb), content_y)
        content_target, style_target = as_grey_rgb(content_y), as_grey_rgb(style_y)
    else:
        content_target, style_target = content_rgb, style_rgb
    loss_fn = GatysLoss(features, content_target, style_target, config.pooling)

    if config.init == "noise":
        generator = torch.Generator().manual_seed(config.seed)
        start = torch.rand(content_target.shape, generator=generator).to(device)
    else:
        start = content_target.clone(memory_format=torch.contiguous_format)
    image = start.requires_grad_(True)
    if config.optimizer == "lbfgs":
        optimizer = torch.optim.LBFGS([image], lr=1.0, max_iter=1, history_size=_LBFGS_HISTORY)
    else:
        optimizer = torch.optim.Adam([image], lr=config.adam_learning_rate)

    def total_loss(terms: LossTerms) -> torch.Tensor:
        return weighted_loss(terms, config)

    best = _Best()
    history: list[float] = []

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        shown = image.clamp(0.0, 1.0)
        terms = loss_fn(shown)
        loss = total_loss(terms)
        objective = loss + _RANGE_PENALTY_WEIGHT * (image - shown).pow(2).mean()
        objective.backward()
        best.offer(shown, loss, terms)
        history.append(loss.item())
        if on_step is not None:
            on_step(len(history), config.steps, terms.content.item(), terms.style.item())
        return objective

    truncated = False
    for step in range(1, config.steps + 1):
        optimizer.step(closure)
        if step < config.steps and time.monotonic() >= deadline:
            truncated = True
            break
    if not truncated:
        with torch.no_grad():  # the last update has not been evaluated yet
            shown = image.clamp(0.0, 1.0)
            terms = loss_fn(shown)
            best.offer(shown, total_loss(terms), terms)

    result = best.image
    if config.preserve_color:
        result = with_chroma_of(luminance(result), content_rgb)
    return TransferResult(
        image=tensor_to_pil(result),
        steps_done=len(history),
        truncated=truncated,
        content_loss=best.content_loss,
        style_loss=best.style_loss,
        loss_history=tuple(history),
    )


def weighted_loss(terms: LossTerms, config: NeuralStyleConfig) -> torch.Tensor:
    """The total the optimisation descends on (without the range penalty)."""
    return (
        config.content_weight * terms.content
        + config.style_weight * terms.style
        + config.tv_weight * terms.total_variation
    )


class _Best:
    """The lowest-loss image evaluated so far (L-BFGS without line search may overshoot)."""

    def __init__(self) -> None:
        self.loss = math.inf
        self.image: torch.Tensor | None = None
        self.content_loss = math.nan
        self.style_loss = math.nan

    def offer(self, image: torch.Tensor, loss: torch.Tensor, terms: LossTerms) -> None:
        value = loss.item()
        if value < self.loss or self.image is None:
            self.loss = value
            self.image = image.detach().clone()
            self.content_loss = terms.content.item()
            self.style_loss = terms.style.item()
