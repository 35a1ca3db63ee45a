"""Diffusion job cost, what would fit a budget, start-up calibration and learning from groups."""

import numpy as np
import pytest

from imagelab.cost import SpeedModel
from imagelab.diffusion.cost import job_work, what_fits
from imagelab.diffusion.jobs import GenerationJob
from imagelab.diffusion.speed import calibrate_engine, observe_generation

RATES = {"unet": 1.0, "decode_full": 1.0, "decode_fast": 0.01, "text": 0.01}  # s per unit
SCHEDULERS = ("ddim", "dpmpp", "euler_a", "lcm")
TINY_SIZE = dict(width=64, height=64)


def test_work_counts_guided_rows_images_and_the_chosen_decoder():
    guided = job_work(GenerationJob("x", steps=10, width=512, height=256, num_images=2))
    megapixels = 512 * 256 / 1e6
    assert guided.units["unet"] == pytest.approx(10 * 2 * 2 * megapixels)
    assert guided.units["decode_full"] == pytest.approx(2 * megapixels)
    assert guided.units["text"] == 2
    unguided = job_work(GenerationJob("x", steps=4, guidance_scale=1.0, scheduler="lcm", decoder="fast"))
    assert unguided.units["unet"] == pytest.approx(4 * 512 * 512 / 1e6)
    assert "decode_full" not in unguided.units and unguided.units["text"] == 1


def test_what_fits_lists_each_single_change_that_fits_with_its_estimate():
    speed = SpeedModel(pinned=RATES)
    job = GenerationJob("x", steps=25, width=512, height=512)  # ~13.4 s at these rates
    fits = {tuple(f.changes): f for f in what_fits(job, speed, budget_s=5.0, schedulers=SCHEDULERS)}
    assert fits[("steps",)].changes == {"steps": 8}
    assert fits[("scheduler", "steps", "guidance")].changes == {"scheduler": "lcm", "steps": 4, "guidance": 1.0}
    assert fits[("width", "height")].changes == {"width": 312, "height": 312}
    assert ("decoder",) not in fits  # the UNet alone is over budget
    for fit in fits.values():
        assert fit.estimated_s <= 5.0
    assert "steps=8 (~4 s)" == fits[("steps",)].describe()


def test_what_fits_offers_the_fast_decoder_when_the_decode_is_what_overruns():
    speed = SpeedModel(pinned=RATES)
    job = GenerationJob("x", steps=1, guidance_scale=1.0, scheduler="lcm", width=1024, height=1024, num_images=4)
    changes = [f.changes for f in what_fits(job, speed, budget_s=5.0, schedulers=SCHEDULERS)]
    assert {"decoder": "fast"} in changes
    assert not any("scheduler" in c for c in changes)  # already lcm


def test_what_fits_leaves_out_lcm_when_the_engine_has_no_lcm_adapter():
    speed = SpeedModel(pinned=RATES)
    job = GenerationJob("x", steps=25, width=512, height=512)
    changes = [f.changes for f in what_fits(job, speed, 5.0, schedulers=("ddim", "dpmpp"))]
    assert not any("scheduler" in c for c in changes)


def test_calibration_times_every_stage_of_the_engine(engine):
    speed = SpeedModel()
    calibration = calibrate_engine(engine, speed, size_px=64)
    assert set(calibration.seconds) == {"unet", "decode_full", "decode_fast", "text"}
    for stage in calibration.seconds:
        assert speed.rate(stage) > 0
    assert speed.describe()["unet"]["observations"] == 0


def test_served_groups_refine_the_rates(engine):
    speed = SpeedModel()
    calibrate_engine(engine, speed, size_px=64)
    jobs = [
        GenerationJob("a cat", steps=2, seed=1, **TINY_SIZE),
        GenerationJob("a dog", steps=2, seed=2, **TINY_SIZE),
        GenerationJob("a cat", steps=2, seed=3, decoder="fast", **TINY_SIZE),
    ]
    outcomes = engine.generate_each(jobs)
    observe_generation(speed, jobs, outcomes)
    described = speed.describe()
    assert described["unet"]["observations"] == 2  # two groups: the decoder splits them
    assert described["decode_full"]["observations"] == 1
    assert described["decode_fast"]["observations"] == 1


def test_a_failed_job_times_nothing(engine):
    speed = SpeedModel(pinned={"text": 1.0})
    jobs = [GenerationJob("a cat", steps=1, **TINY_SIZE)]
    observe_generation(speed, jobs, [RuntimeError("decode failed")])
    assert not speed.knows("unet")


def test_decoder_choice_changes_the_image_not_its_size_and_each_is_deterministic(engine):
    def image(decoder):
        [result] = engine.generate([GenerationJob("a lion", steps=2, seed=5, decoder=decoder, **TINY_SIZE)])
        return np.asarray(result.images[0])

    full, fast = image("full"), image("fast")
    assert full.shape == fast.shape == (64, 64, 3)
    assert not np.array_equal(full, fast)
    assert np.array_equal(fast, image("fast"))
    assert engine.decoders.synthetic  # no TAESD weights in the tiny fixture: the stand-in


def test_an_unknown_decoder_is_refused_naming_the_field():
    with pytest.raises(ValueError, match="decoder"):
        GenerationJob("x", decoder="turbo")
