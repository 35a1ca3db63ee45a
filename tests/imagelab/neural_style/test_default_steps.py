"""neural_style's default step count follows its measured speed (issue 16.3): the rule, given a
rate and a budget, and the service applying it. No timings are asserted."""

import io

import pytest
from PIL import Image

from handlers.common.fields import Fields
from handlers.common.service import ServiceContext
from handlers.services.neural_style import NeuralStyleService
from imagelab.neural_style import synthesize_tiny_vgg19
from imagelab.neural_style.speed import BUDGET_MARGIN, OVERHEAD_STEPS, StepSpeed, default_steps, measure_step_speed


@pytest.mark.parametrize(
    ("seconds_per_step", "budget_s", "ceiling", "expected"),
    [
        (0.5, 240.0, 100, 100),  # 382 would fit: the archive's default_steps caps it
        (10.3, 240.0, 100, 16),  # fp32 VGG19 at 512 px (BENCHMARKS.md): floor(192 / 10.3) - 2
        (2.0, 240.0, 100, 94),  # floor(192 / 2) - 2
        (300.0, 240.0, 100, 1),  # not even one fits: one step, the least a run does
    ],
)
def test_default_steps_is_what_fits_the_budget_with_margin(seconds_per_step, budget_s, ceiling, expected):
    assert (BUDGET_MARGIN, OVERHEAD_STEPS) == (0.8, 2)
    assert default_steps(seconds_per_step, budget_s, ceiling) == expected


def test_default_steps_with_its_overhead_stays_within_the_margin():
    for seconds_per_step in (0.7, 3.3, 10.3, 47.0):
        steps = default_steps(seconds_per_step, 240.0, 1000)
        if steps > 1:
            assert (steps + OVERHEAD_STEPS) * seconds_per_step <= BUDGET_MARGIN * 240.0


def test_default_steps_rejects_a_non_positive_rate():
    with pytest.raises(ValueError, match="positive"):
        default_steps(0.0, 240.0, 100)


def test_step_time_scales_with_the_pixels():
    speed = StepSpeed(seconds_per_megapixel_step=4.0, measured_at_px=128)
    assert speed.seconds_per_step(512) == pytest.approx(4.0 * 0.262144)
    assert speed.seconds_per_step(1024) == pytest.approx(4 * speed.seconds_per_step(512))
    assert speed.steps_per_s(512) == pytest.approx(1 / speed.seconds_per_step(512))


def test_measure_step_speed_gives_a_positive_rate(tiny_features):
    speed = measure_step_speed(tiny_features, side_px=64, steps=3)
    assert speed.measured_at_px == 64 and speed.seconds_per_megapixel_step > 0


def _png(size=(80, 60)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (120, 40, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """A worker whose rate is pinned at 40 s per megapixel-step: 10.5 s a step at 512 px."""
    root = tmp_path_factory.mktemp("neural_style")
    synthesize_tiny_vgg19(root / "vgg19.safetensors", seed=0)
    settings = {"vgg_weights": "vgg19.safetensors", "seconds_per_megapixel_step": 40.0, "time_budget_s": 240}
    service = NeuralStyleService()
    service.setup(ServiceContext("neural_style", "1.0", root, settings, "cpu"))
    return service


def test_the_service_defaults_steps_from_its_speed_at_the_requests_size(service):
    images = {"content": _png(), "style_image": _png()}
    at_512 = default_steps(40.0 * 512 * 512 / 1e6, 240.0, 100)
    assert at_512 == 16
    assert service.decode_request(Fields({**images, "max_side_px": 512})).config.steps == at_512
    assert service.decode_request(Fields({**images, "max_side_px": 256})).config.steps == 71  # 2.6 s a step
    half_budget = service.decode_request(Fields({**images, "max_side_px": 512, "time_budget_s": 120}))
    assert half_budget.config.steps == default_steps(40.0 * 0.262144, 120.0, 100) == 7
    named = service.decode_request(Fields({**images, "max_side_px": 512, "steps": 300}))
    assert named.config.steps == 300  # a request's own steps are its own (time_budget_s truncates)


def test_describe_states_the_speed_and_the_defaults(service):
    described = service.describe()
    speed = described["speed"]
    assert speed["steps_per_s"][512] == pytest.approx(1 / (40.0 * 0.262144), abs=1e-4)
    assert speed["default_steps"] == {256: 71, 512: 16, 1024: 2}
    assert speed["measured_at_px"] is None and speed["precision"] in ("fp32", "bfloat16 autocast")
    assert described["fields"]["steps"]["default"] == speed["default_steps"][256]  # at default_max_side_px
