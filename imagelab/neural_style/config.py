"""Settings of one Gatys style transfer run, validated at construction."""

from dataclasses import dataclass

from imagelab.neural_style.vgg import POOLING_MODES
from imagelab.validation import SEED_RANGE, InvalidValue, check_choice, check_int, check_number

# The limits of a run; the neural_style request spec (handlers/services/neural_style.py) reuses them.
STEPS_RANGE = (1, 1000)
MAX_SIDE_PX_RANGE = (64, 1024)
WEIGHT_RANGE = (0.0, 1e6)
TIME_BUDGET_S_MAX = 3600.0
ADAM_LEARNING_RATE_RANGE = (1e-5, 1.0)
INIT_MODES = ("content", "noise")
OPTIMIZERS = ("lbfgs", "adam")


@dataclass(frozen=True)
class NeuralStyleConfig:
    """One run of `transfer`.

    steps: optimisation steps; one step is one loss-and-gradient evaluation, for L-BFGS too
        (see `transfer`).
    max_side_px: the content is resized so its longest side is exactly this; the style image
        is resized to the same longest side, keeping its own aspect.
    content_weight, style_weight, tv_weight: weights of the relative content and style errors
        and of the total variation of the [0, 1] image (see losses.py for their scale). The
        defaults were chosen on random-weight VGG19s (no real weights offline): at 10 the style
        dominates while the content's outlines stay; tune them on real weights.
    init: start from the content image ("content") or from uniform noise drawn with `seed`.
    preserve_color: transfer luminance only and keep the content's chroma (Gatys et al. 2016,
        "Preserving Color in Neural Artistic Style Transfer").
    time_budget_s: wall-clock limit; when it passes the best image so far is returned.
    pooling: "avg" replaces VGG's max-pools by average pools. Default "avg": Gatys et al. found
        it gives slightly more appealing results, and it passes gradient to every pixel of each
        2x2 window rather than one, which smooths the early steps of a short CPU run.
    adam_learning_rate: step size for optimizer="adam", in [0, 1] pixel units.
    """

    steps: int = 100
    max_side_px: int = 256
    content_weight: float = 1.0
    style_weight: float = 10.0
    tv_weight: float = 1.0
    init: str = "content"
    optimizer: str = "lbfgs"
    seed: int = 0
    preserve_color: bool = False
    time_budget_s: float | None = None
    pooling: str = "avg"
    adam_learning_rate: float = 0.02

    def __post_init__(self) -> None:
        check_int("steps", self.steps, *STEPS_RANGE)
        check_int("max_side_px", self.max_side_px, *MAX_SIDE_PX_RANGE)
        for name in ("content_weight", "style_weight", "tv_weight"):
            check_number(name, getattr(self, name), *WEIGHT_RANGE)
        if self.content_weight == 0 and self.style_weight == 0:
            raise InvalidValue("content_weight", "content_weight and style_weight must not both be 0")
        check_choice("init", self.init, INIT_MODES)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_int("seed", self.seed, *SEED_RANGE)
        if not isinstance(self.preserve_color, bool):
            raise InvalidValue("preserve_color", f"preserve_color must be true or false, got {self.preserve_color!r}")
        if self.time_budget_s is not None and (
            isinstance(self.time_budget_s, bool)
            or not isinstance(self.time_budget_s, (int, float))
            or not 0 < self.time_budget_s <= TIME_BUDGET_S_MAX
        ):
            raise InvalidValue(
                "time_budget_s",
                f"time_budget_s must be None or a number in (0, {TIME_BUDGET_S_MAX:g}], got {self.time_budget_s!r}",
            )
        check_choice("pooling", self.pooling, POOLING_MODES)
        check_number("adam_learning_rate", self.adam_learning_rate, *ADAM_LEARNING_RATE_RANGE)
