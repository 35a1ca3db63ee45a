"""animals end to end: class matching, prompts, colour adjustments, validation."""

import io
from unittest.mock import ANY

import numpy as np
import pytest
from PIL import Image, ImageEnhance
from support import assert_error, decode

FAST = {"steps": 2, "width": 64, "height": 64, "seed": 21}


def animal(server, **fields):
    return server.predict("animals", json={**FAST, **fields}, timeout_s=300)


def test_a_lion(server):
    response = animal(server, animal="lion", response_format="json")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["parameters"]["animal"] == "lion" and "lion" in body["parameters"]["prompt"]
    assert body["seeds"] == [21]


@pytest.mark.parametrize("spelling", ["Polar Bear", "polar-bear", "POLAR_BEAR"])
def test_names_match_case_insensitively_with_separators_equal(server, spelling):
    reference = animal(server, animal="polar_bear").content
    assert animal(server, animal=spelling).content == reference


def test_unknown_class_names_the_closest(server):
    body = assert_error(animal(server, animal="tigre"), 400, "animal")
    assert "tiger" in body["message"]


def test_adjustments_at_one_leave_the_image_unchanged(server):
    plain = animal(server, animal="cat").content
    assert animal(server, animal="cat", contrast=1, saturation=1.0, brightness="1").content == plain


def test_adjustments_apply_after_decoding(server):
    plain = decode(animal(server, animal="dog"))
    adjusted = decode(animal(server, animal="dog", brightness=1.5))
    expected = ImageEnhance.Brightness(plain).enhance(1.5)
    difference = np.abs(np.asarray(adjusted, dtype=int) - np.asarray(expected, dtype=int))
    assert difference.max() <= 1
    assert np.asarray(adjusted).mean() > np.asarray(plain).mean()


def test_prompt_extra_changes_the_prompt(server):
    body = animal(server, animal="elephant", prompt_extra="in the snow", response_format="json").json()
    assert body["parameters"]["prompt"].endswith("in the snow")


def test_describe_lists_100_classes(server):
    described = server.management("GET", "/models/animals?customized=true").json()[0]["customizedMetadata"]
    assert len(described["classes"]) == 100
    assert {"lion", "tiger", "elephant", "cat", "dog"} <= set(described["classes"])
    assert described["fields"]["contrast"] == {"type": "number", "min": 0, "max": 3, "default": 1.0, "description": ANY}


@pytest.mark.parametrize(
    "fields,field",
    [
        ({}, "animal"),
        ({"animal": "lion", "contrast": 3.5}, "contrast"),
        ({"animal": "lion", "saturation": -0.1}, "saturation"),
        ({"animal": "lion", "brightness": "inf"}, "brightness"),
        ({"animal": "lion", "steps": 500}, "steps"),
        ({"animal": "lion", "style": "monet"}, "style"),
    ],
)
def test_validation(server, fields, field):
    response = server.predict("animals", json={**FAST, **fields})
    assert_error(response, 400, field)
    assert Image.open(io.BytesIO(animal(server, animal="tiger").content)).size == (64, 64)
