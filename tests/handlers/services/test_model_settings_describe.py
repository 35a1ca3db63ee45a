"""What the playground's model-settings panel reads from describe (issue 18.4): the device and
dtype the worker runs on, and per scheduler the steps and guidance it is offered with (the
seed's 20-100 steps and guidance 1-20; LCM's few steps), while the request limits stay the core's."""

import pytest

from handlers.common.fields import Fields
from handlers.services.animals import AnimalsService
from handlers.services.diffusion import LCM_GUIDANCE_RANGE, LCM_STEPS_RANGE, scheduler_ranges
from handlers.services.txt2img import Txt2ImgService
from imagelab.diffusion.jobs import GUIDANCE_RANGE, STEPS_RANGE

FREE = {"unet": 1e-9, "decode_full": 1e-9, "decode_fast": 1e-9, "text": 1e-9}  # pinned: no calibration
CLASSIC = ("ddim", "dpmpp", "euler_a")


@pytest.fixture(scope="module")
def animals(service):
    return service(AnimalsService, cost_rates=FREE, cpu_defaults={"scheduler": "lcm", "steps": 4, "guidance": 1.0})


def test_describe_names_the_device_and_dtype_the_worker_runs_on(animals, service):
    described = animals.describe()
    assert (described["device"], described["dtype"]) == ("cpu", "float32")
    assert service(Txt2ImgService, cost_rates=FREE).describe()["dtype"] == "float32"


def test_steps_and_guidance_ranges_follow_the_scheduler(animals):
    fields = animals.describe()["fields"]
    steps, guidance = fields["steps"]["by_scheduler"], fields["guidance"]["by_scheduler"]
    assert set(steps) == set(guidance) == set(fields["scheduler"]["choices"]) == {*CLASSIC, "lcm"}
    for name in CLASSIC:
        assert steps[name] == {"min": 20, "max": 100, "default": 25}
        assert guidance[name] == {"min": 1.0, "max": 20.0, "default": 7.5}
    # The CPU's LCM default is the served default, and lies in LCM's own range.
    assert fields["scheduler"]["default"] == "lcm" and fields["steps"]["default"] == 4
    assert steps["lcm"] == {"min": LCM_STEPS_RANGE[0], "max": LCM_STEPS_RANGE[1], "default": 4}
    assert guidance["lcm"] == {"min": LCM_GUIDANCE_RANGE[0], "max": LCM_GUIDANCE_RANGE[1], "default": 1.0}
    # The request limits are still the core's: the ranges are what the panel offers.
    assert (fields["steps"]["min"], fields["steps"]["max"]) == STEPS_RANGE
    assert (fields["guidance"]["min"], fields["guidance"]["max"]) == GUIDANCE_RANGE
    assert "2-8 steps" in fields["scheduler"]["note"]


def test_a_classic_default_gives_lcm_its_own_few_step_default():
    ranges = scheduler_ranges(("dpmpp", "lcm"), {"scheduler": "dpmpp", "steps": 30, "guidance": 5.0}, {})
    assert ranges["steps"]["dpmpp"]["default"] == 30 and ranges["guidance"]["dpmpp"]["default"] == 5.0
    assert ranges["steps"]["lcm"]["default"] == 4 and ranges["guidance"]["lcm"]["default"] == 1.0
    # A default outside a scheduler's offered range is brought inside it.
    ranges = scheduler_ranges(("ddim",), {"scheduler": "ddim", "steps": 8, "guidance": 7.5}, {})
    assert ranges["steps"]["ddim"]["default"] == 20


def test_a_request_outside_the_offered_range_is_still_served(animals):
    request = animals.decode_request(Fields({"animal": "tiger", "scheduler": "dpmpp", "steps": 2}))
    assert (request.job.scheduler, request.job.steps) == ("dpmpp", 2)
