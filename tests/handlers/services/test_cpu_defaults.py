"""Defaults that finish (issue 15.5): animals defaults to LCM on a CPU when its LoRA is there."""

from pathlib import Path

import pytest
import yaml

from handlers.services.settings import DiffusionServiceSettings

FAST = {"scheduler": "lcm", "steps": 4, "guidance": 1.0}
WITH_LCM = ("ddim", "dpmpp", "euler_a", "lcm")


def settings(**extra):
    return DiffusionServiceSettings(base_model="sd15", **extra)


def test_cpu_defaults_apply_on_a_cpu_with_the_lcm_lora():
    assert settings(cpu_defaults=FAST).defaults_for("cpu", WITH_LCM) == FAST


def test_the_archive_defaults_stay_without_the_lcm_lora_or_on_cuda():
    archive = {"scheduler": "dpmpp", "steps": 25, "guidance": 7.5}
    assert settings(cpu_defaults=FAST).defaults_for("cpu", ("ddim", "dpmpp")) == archive
    assert settings(cpu_defaults=FAST).defaults_for("cuda:0", WITH_LCM) == archive
    assert settings().defaults_for("cpu", WITH_LCM) == archive  # txt2img keeps its defaults


def test_unknown_cpu_defaults_are_a_config_error():
    with pytest.raises(ValueError, match="cpu_defaults"):
        settings(cpu_defaults={"width": 256})


def test_the_animals_archive_config_asks_for_lcm_on_cpu():
    config = yaml.safe_load((Path(__file__).parents[3] / "archiver" / "configs" / "animals.yaml").read_text())
    assert config["handler"]["cpu_defaults"] == FAST
