"""One field spec per model: it decodes, validates (the error names its field as data),
describes and names the accepted fields, and its limits are the core's own."""

import io

import pytest
from PIL import Image

from handlers.common.errors import InvalidField, TooLarge
from handlers.common.fields import Fields
from handlers.common.service import ServiceContext
from handlers.common.spec import SEED_FIELD, Drawn, Field, FieldSpec
from handlers.services.animals import AnimalsService
from handlers.services.diffusion import GENERATION_SPEC
from handlers.services.fast_style import FastStyleService
from handlers.services.neural_style import NeuralStyleService
from handlers.services.txt2img import Txt2ImgService
from imagelab.diffusion.jobs import GUIDANCE_RANGE, STEPS_RANGE, GenerationJob
from imagelab.fast_style.weights import synthesize_transformer_net
from imagelab.neural_style import synthesize_tiny_vgg19
from imagelab.neural_style.config import STEPS_RANGE as NEURAL_STEPS_RANGE
from imagelab.neural_style.config import WEIGHT_RANGE
from imagelab.validation import SEED_RANGE


def png(size=(32, 24)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def rejected(decode, values: dict, error=InvalidField) -> InvalidField:
    with pytest.raises(error) as caught:
        decode(Fields(values))
    return caught.value


# ---------------------------------------------------------------- the spec itself

SPEC = FieldSpec(
    Field("size", "integer", "Side", default=64, low=8, high=128, multiple_of=8, unit="px"),
    Field("mode", "choice", "Mode", default="a", choices=("a", "b")),
    Field("name", "text", "Who", required=True, required_hint="say who"),
    Field("photo", "image", "A photo", required=True),
    SEED_FIELD,
)


def test_decode_fills_defaults_and_draws_the_seed():
    values = SPEC.decode(Fields({"name": "x", "photo": png()}))
    assert (values["size"], values["mode"], values["name"]) == (64, "a", "x")
    assert values["photo"].size == (32, 24)
    assert SEED_RANGE[0] <= values["seed"] <= SEED_RANGE[1] and isinstance(values["seed"], int)


@pytest.mark.parametrize(
    "values, field, words",
    [
        ({"size": 12}, "size", "multiple of 8 from 8 to 128"),
        ({"size": 136}, "size", "from 8 to 128"),
        ({"mode": "c"}, "mode", "one of a, b"),
        ({"name": " "}, "name", "'name' is required: say who"),
        ({"sizee": 8}, "sizee", "unknown field"),
        ({"seed": SEED_RANGE[1] + 1}, "seed", str(SEED_RANGE[1])),
        ({"photo": b"not an image"}, "photo", "photo"),
    ],
)
def test_every_error_names_its_field_as_data(values, field, words):
    error = rejected(SPEC.decode, {"name": "x", "photo": png(), **values})
    assert error.field == field and error.status == 400
    assert words in error.message


def test_scalars_are_checked_before_images_are_decoded():
    error = rejected(SPEC.decode, {"name": "x", "photo": b"junk", "mode": "z"})
    assert error.field == "mode"


def test_describe_lists_range_default_unit_and_description():
    described = SPEC.describe()
    assert described["size"] == {
        "type": "integer",
        "min": 8,
        "max": 128,
        "multiple_of": 8,
        "default": 64,
        "unit": "px",
        "description": "Side",
    }
    assert described["name"] == {"type": "text", "required": True, "description": "Who"}
    assert described["seed"]["default"] == "random" and described["seed"]["max"] == SEED_RANGE[1]
    assert described["photo"]["type"] == "image" and described["photo"]["formats"] == ["jpeg", "png", "webp"]
    assert SPEC.names == frozenset(described)


def test_declarations_are_checked():
    with pytest.raises(ValueError, match="declared twice"):
        FieldSpec(SPEC, Field("mode", "boolean", "again"))
    with pytest.raises(ValueError, match="outside"):
        SPEC.bind(size={"high": 32})  # the default 64 no longer fits
    with pytest.raises(ValueError, match="not among"):
        SPEC.bind(mode={"choices": ("x", "y")})
    with pytest.raises(ValueError, match="no such fields"):
        SPEC.bind(colour={"default": 1})
    unbound = FieldSpec(Field("side", "integer", "Side"))
    with pytest.raises(RuntimeError, match="bind it at setup"):
        unbound.decode(Fields({}))
    assert isinstance(SEED_FIELD.default, Drawn)


# ---------------------------------------------------------------- fast_style, neural_style


@pytest.fixture(scope="module")
def fast_style(tmp_path_factory):
    root = tmp_path_factory.mktemp("fast_style")
    synthesize_transformer_net(root / "candy.safetensors", "candy")
    service = FastStyleService()
    settings = {"styles": {"candy": "candy.safetensors"}, "max_side_px": 512, "default_max_side_px": 256}
    settings["max_image_bytes"] = 50_000
    service.setup(ServiceContext("fast_style", "1.0", root, settings, "cpu"))
    return service


@pytest.fixture(scope="module")
def neural_style(tmp_path_factory):
    root = tmp_path_factory.mktemp("neural_style")
    synthesize_tiny_vgg19(root / "vgg19.safetensors", seed=0)
    service = NeuralStyleService()
    service.setup(ServiceContext("neural_style", "1.0", root, {"vgg_weights": "vgg19.safetensors"}, "cpu"))
    return service


def test_fast_style_spec_takes_styles_and_limits_from_the_archive(fast_style):
    fields = fast_style.describe()["fields"]
    assert fields["style"]["choices"] == ["candy"] and fields["style"]["default"] == "candy"
    assert (fields["max_side_px"]["min"], fields["max_side_px"]["max"]) == (16, 512)
    assert fields["image"]["max_bytes"] == 50_000
    assert (
        fast_style.field_names
        == frozenset(fields)
        == {
            "image",
            "style",
            "max_side_px",
            "format",
            "quality",
            "response_format",
        }
    )
    request = fast_style.decode_request(Fields({"image": png((64, 32)), "max_side_px": 32, "format": "jpeg"}))
    assert request.image.size == (32, 16) and request.style == "candy" and request.output.format == "jpeg"
    assert rejected(fast_style.decode_request, {"image": png(), "max_side_px": 513}).field == "max_side_px"
    assert rejected(fast_style.decode_request, {"image": png(), "stream": "true"}).field == "stream"
    assert rejected(fast_style.decode_request, {"image": b"\x89PNG" + bytes(60_000)}, TooLarge).field == "image"


def test_neural_style_spec_uses_the_cores_limits(neural_style):
    fields = neural_style.describe()["fields"]
    assert (fields["steps"]["min"], fields["steps"]["max"]) == NEURAL_STEPS_RANGE
    assert fields["content_weight"]["max"] == WEIGHT_RANGE[1] and fields["seed"]["max"] == SEED_RANGE[1]
    assert fields["time_budget_s"]["unit"] == "s" and fields["stream"]["type"] == "boolean"
    assert neural_style.field_names == frozenset(fields)
    images = {"content": png(), "style_image": png()}
    at_the_limits = {"steps": NEURAL_STEPS_RANGE[1], "content_weight": WEIGHT_RANGE[1], "seed": SEED_RANGE[1]}
    config = neural_style.decode_request(Fields({**images, **at_the_limits})).config  # the core accepts them
    assert (config.steps, config.content_weight, config.seed) == (1000, WEIGHT_RANGE[1], SEED_RANGE[1])


def test_neural_style_cross_field_error_names_its_field(neural_style):
    values = {"content": png(), "style_image": png(), "content_weight": 0, "style_weight": 0}
    error = rejected(neural_style.decode_request, values)
    assert error.field == "content_weight" and "both be 0" in error.message


# ---------------------------------------------------------------- txt2img, animals


# Rates pinned near zero: admission (the time budget's 422) never refuses a request here.
FREE = {"unet": 1e-9, "decode_full": 1e-9, "decode_fast": 1e-9, "text": 1e-9}


@pytest.fixture(scope="module")
def txt2img(service):
    return service(Txt2ImgService, cost_rates=FREE)


def test_generation_limits_are_the_cores():
    assert (GENERATION_SPEC["steps"].low, GENERATION_SPEC["steps"].high) == STEPS_RANGE
    assert (GENERATION_SPEC["guidance"].low, GENERATION_SPEC["guidance"].high) == GUIDANCE_RANGE
    assert GENERATION_SPEC["seed"] is SEED_FIELD


def test_a_request_at_every_limit_makes_a_job_and_one_past_it_names_the_field(txt2img):
    top = {"steps": STEPS_RANGE[1], "guidance": GUIDANCE_RANGE[1], "seed": SEED_RANGE[1], "num_images": 4}
    job = txt2img.decode_request(Fields({"prompt": "a cat", "width": 1024, "height": 64, **top})).job
    assert (job.steps, job.guidance_scale, job.seed, job.width, job.num_images) == (100, 20.0, SEED_RANGE[1], 1024, 4)
    low = {"steps": STEPS_RANGE[0], "guidance": GUIDANCE_RANGE[0], "seed": 0, "style_scale": 0}
    assert txt2img.decode_request(Fields({"prompt": "a cat", **low})).job.guidance_scale == 1.0
    for name, value in [("steps", 101), ("guidance", 20.5), ("seed", -1), ("width", 1032), ("num_images", 5)]:
        error = rejected(txt2img.decode_request, {"prompt": "a cat", name: value})
        assert error.field == name and f"'{name}'" in error.message


def test_guidance_is_the_public_name_and_the_jobs_is_guidance_scale(txt2img):
    request = txt2img.decode_request(Fields({"prompt": "a cat", "guidance": 3.5, "seed": 4}))
    assert request.job.guidance_scale == 3.5
    assert request.parameters["guidance"] == 3.5 and "guidance_scale" not in request.parameters
    assert "seed" not in request.parameters and "format" not in request.parameters
    # A core error travels with its field, mapped to the public name.
    error = rejected(lambda fields: txt2img.make_job({"prompt": "x", "guidance": 25.0}), {})
    assert error.field == "guidance"


def test_txt2img_describe_is_its_spec(txt2img):
    described = txt2img.describe()
    fields = described["fields"]
    assert txt2img.field_names == frozenset(fields)
    assert fields["style"]["choices"] == list(described["styles"]) == ["none", "monet"]
    assert fields["num_images"]["max"] == 4 and fields["prompt"]["max_tokens"] == 77
    assert fields["width"]["multiple_of"] == 8 and fields["width"]["default"] == 64
    assert "lcm" in fields["scheduler"]["choices"]
    assert all(isinstance(f["description"], str) and f["description"] for f in fields.values())


def test_animals_spec_binds_the_class_list(service):
    animals = service(AnimalsService, cost_rates=FREE)
    fields = animals.describe()["fields"]
    assert fields["animal"]["required"] and "lion" in fields["animal"]["choices"]
    assert animals.field_names == frozenset(fields) and "style" not in fields
    request = animals.decode_request(Fields({"animal": "Polar Bear", "contrast": 1.5, "guidance": 2.0}))
    assert request.parameters["animal"] == "polar_bear" and request.parameters["contrast"] == 1.5
    assert request.parameters["guidance"] == 2.0 and "prompt_extra" not in request.parameters
    assert request.job.style == "animals" and request.job.guidance_scale == 2.0
    assert rejected(animals.decode_request, {}).message.startswith("'animal' is required")
    assert rejected(animals.decode_request, {"animal": "lion", "brightness": 3.5}).field == "brightness"


def test_a_job_built_by_hand_is_checked_with_the_same_limits():
    GenerationJob("x", steps=STEPS_RANGE[1], guidance_scale=GUIDANCE_RANGE[1], seed=SEED_RANGE[1])
    for name, value in [("steps", STEPS_RANGE[1] + 1), ("guidance_scale", 0.5), ("seed", SEED_RANGE[1] + 1)]:
        with pytest.raises(ValueError, match=name) as caught:
            GenerationJob("x", **{name: value})
        assert caught.value.field_name == name
