"""fast_style under a time budget (issue 17.2): refuse what cannot fit, split a batch that would
outlive it, and never put more than one max-size image's pixels through one call."""

import io

import pytest
from PIL import Image

from handlers.common.errors import Overloaded, TooExpensive
from handlers.common.fields import Fields
from handlers.common.service import ServiceContext
from handlers.services.fast_style import FastStyleService
from imagelab.fast_style.weights import synthesize_transformer_net


def png(size_px: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size_px, size_px), (200, 120, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def make(tmp_path_factory):
    root = tmp_path_factory.mktemp("fast_style")
    synthesize_transformer_net(root / "candy.safetensors", "candy")

    def make(**settings):
        service = FastStyleService()
        config = {"styles": {"candy": "candy.safetensors"}, "default_max_side_px": 512, **settings}
        service.setup(ServiceContext("fast_style", "1.0", root, config, "cpu"))
        return service

    return make


def test_start_up_calibrates_and_describe_reports_it(make):
    described = make().describe()
    assert described["speed"]["time_budget_s"] == 50.0
    assert described["speed"]["rates"]["stylize"]["s_per_unit"] > 0
    assert described["max_pixels_per_call"] == 2048 * 2048


def test_an_image_over_budget_is_refused_with_the_size_that_fits(make):
    service = make(time_budget_s=10.0, cost_rates={"stylize": 100.0})  # 512 px: ~26 s
    with pytest.raises(TooExpensive) as refused:
        service.decode_request(Fields({"image": png(512), "max_side_px": 512}))
    body = refused.value.body()
    assert (body["code"], body["field"], body["budget_s"]) == (422, "max_side_px", 10.0)
    assert body["estimated_s"] == pytest.approx(26.2, abs=0.1)
    assert body["fits"] == [{"changes": {"max_side_px": 304}, "estimated_s": 9.2}]
    assert "max_side_px=304" in body["message"]
    service.decode_request(Fields({"image": png(512), "max_side_px": 304}))  # what it said fits


def test_a_batch_that_would_outlive_the_budget_runs_what_fits(make):
    service = make(time_budget_s=10.0, cost_rates={"stylize": 20.0})  # 512 px: ~5.2 s each
    requests = [service.decode_request(Fields({"image": png(512), "max_side_px": 512})) for _ in range(2)]
    results = service.predict(requests, lambda index, event: None)
    assert results[0].images[0].size == (512, 512)
    assert isinstance(results[1], Overloaded) and results[1].headers()["Retry-After"] == "6"


def test_a_batch_is_cut_into_calls_of_at_most_one_max_size_image(make):
    service = make(max_side_px=64, default_max_side_px=64, cost_rates={"stylize": 1e-6}, batch_invariant=False)
    requests = [service.decode_request(Fields({"image": png(64)})) for _ in range(3)]
    results = service.predict(requests, lambda index, event: None)
    assert [r.extra["network_batch"] for r in results] == [1, 1, 1]
    small = [service.decode_request(Fields({"image": png(64), "max_side_px": 32})) for _ in range(5)]
    results = service.predict(small, lambda i, e: None)
    assert [r.extra["network_batch"] for r in results] == [4, 4, 4, 4, 1]
    assert [r.extra["batch_size"] for r in results] == [5] * 5


def test_batch_invariant_runs_each_image_alone_and_gets_its_solo_pixels(make):
    """The shipped default: one image per network call (channels_last rounds by batch size),
    so a batch's images are bit for bit what each gets alone."""
    service = make(cost_rates={"stylize": 1e-6})
    photos = [png(48), png(48), png(40)]
    alone = [service.predict([service.decode_request(Fields({"image": p}))], None)[0].images[0] for p in photos]
    results = service.predict([service.decode_request(Fields({"image": p})) for p in photos], None)
    assert [r.extra["network_batch"] for r in results] == [1, 1, 1]
    assert [r.extra["batch_size"] for r in results] == [3, 3, 3]
    assert [r.images[0].tobytes() for r in results] == [a.tobytes() for a in alone]
    assert service.describe()["inference"]["images_per_call"] == 1
