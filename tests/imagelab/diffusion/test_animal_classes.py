"""The animals LoRA's class list, name matching and prompts."""

import pytest

from imagelab.diffusion.animals import PROMPT_TEMPLATES, AnimalClasses, UnknownAnimalError, normalise


@pytest.fixture(scope="module")
def animals() -> AnimalClasses:
    return AnimalClasses.load()


def test_hundred_canonical_classes(animals):
    assert len(animals) == 100
    assert {"lion", "tiger", "elephant", "cat", "dog", "polar_bear"} <= set(animals.names)
    assert all(normalise(name) == name for name in animals.names)


@pytest.mark.parametrize("spelling", ["polar_bear", "Polar Bear", "polar-bear", " POLAR  bear ", "Polar_Bear"])
def test_spellings_match(animals, spelling):
    assert animals.match(spelling) == "polar_bear"
    assert spelling in animals


def test_unknown_name_suggests_closest(animals):
    with pytest.raises(UnknownAnimalError) as caught:
        animals.match("lyon")
    assert isinstance(caught.value, ValueError)
    assert "lion" in caught.value.suggestions
    assert "lion" in str(caught.value) and "lyon" in str(caught.value)


def test_hopeless_name_has_no_suggestions(animals):
    with pytest.raises(ValueError) as caught:
        animals.match("qqqqqqqq")
    assert caught.value.suggestions == []


def test_prompt_for(animals):
    assert animals.prompt_for("Polar-Bear") == "a photo of a polar bear"
    assert animals.prompt_for("elephant", template_index=0) == "a photo of an elephant"
    assert animals.prompt_for("cat", extra=" at sunset ", template_index=2) == "a photo of a cat in the wild, at sunset"
    by_seed = {animals.prompt_for("dog", seed=seed) for seed in range(40)}
    assert len(by_seed) == len(PROMPT_TEMPLATES)
    assert animals.prompt_for("dog", seed=7) == animals.prompt_for("dog", seed=7)
    with pytest.raises(ValueError, match="template_index"):
        animals.prompt_for("dog", template_index=len(PROMPT_TEMPLATES))


def test_bad_class_lists_are_rejected(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("lion\nLion King\n")
    with pytest.raises(ValueError, match="lowercase"):
        AnimalClasses.load(path)
    path.write_text("lion\nlion\n")
    with pytest.raises(ValueError, match="duplicate"):
        AnimalClasses.load(path)
