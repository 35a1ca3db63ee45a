"""Fields getters: every input shape TorchServe can hand us (bytes from multipart, gRPC and query
strings; str and JSON scalars from JSON bodies and v2 tensors; one-element lists from v2)."""

import base64

import pytest

from handlers.common.errors import InvalidField, TooLarge
from handlers.common.fields import Fields


def fields(**values) -> Fields:
    return Fields(values)


def assert_names_field(error: pytest.ExceptionInfo, name: str, status: int = 400):
    assert error.value.status == status
    assert error.value.field == name
    assert f"'{name}'" in error.value.message


# ---------------------------------------------------------------- integer


@pytest.mark.parametrize(
    "value, expected",
    [
        (b"7", 7),
        (bytearray(b"7"), 7),
        ("7", 7),
        (7, 7),
        (b" 12 \n", 12),
        (7.0, 7),
        ("7.0", 7),
        (b"7.000", 7),  # whole-number floats are whole numbers
        ("1e3", 1000),
        (b"1E3", 1000),
        (2000, 2000),
        (0, 0),
        ([5], 5),
        ([b"5"], 5),  # v2 tensors of shape [1]
    ],
)
def test_integer_accepts_every_encoding(value, expected):
    result = fields(steps=value).integer("steps", 1, 0, 2000)
    assert result == expected and type(result) is int


@pytest.mark.parametrize("value", [None, b"", "", bytearray()])
def test_integer_absent_or_empty_gives_default(value):
    assert fields(steps=value).integer("steps", 42, 0, 100) == 42
    assert fields().integer("steps", None, 0, 100) is None


@pytest.mark.parametrize(
    "value",
    [
        "nan",
        b"NaN",
        float("nan"),
        "inf",
        "-inf",
        b"Infinity",
        float("inf"),
        float("-inf"),
        "abc",
        b"\xff\xfe",
        "0x10",
        "7 steps",
        "1e400",  # 1e400 parses to inf
        True,
        False,  # JSON booleans are not numbers here
        7.5,
        "7.5",
        "1e-3",
        [1, 2],
        [],
        {"steps": 1},
        object(),
    ],
)
def test_integer_rejects_non_integers(value):
    with pytest.raises(InvalidField) as error:
        fields(steps=value).integer("steps", 1, 0, 2000)
    assert_names_field(error, "steps")


@pytest.mark.parametrize("value", [-1, "-1", 2001, b"2001", 1e9])
def test_integer_range_is_enforced_and_stated(value):
    with pytest.raises(InvalidField) as error:
        fields(steps=value).integer("steps", 1, 0, 2000)
    assert_names_field(error, "steps")
    assert "0 to 2000" in error.value.message


def test_integer_negative_range():
    assert fields(seed=b"-5").integer("seed", 0, -10, 10) == -5


@pytest.mark.parametrize("getter", ["integer", "number"])
def test_huge_json_integer_is_a_field_error(getter):
    with pytest.raises(InvalidField) as error:
        getattr(fields(seed=10**400), getter)("seed", 0, 0, 2**32)
    assert_names_field(error, "seed")


# ---------------------------------------------------------------- number


@pytest.mark.parametrize(
    "value, expected",
    [
        (b"0.5", 0.5),
        ("0.5", 0.5),
        (0.5, 0.5),
        (1, 1.0),
        ("1e-3", 0.001),
        (b" -0.25 ", -0.25),
        (["2"], 2.0),
        (b"1E1", 10.0),
        ("10", 10.0),
    ],
)
def test_number_accepts_every_encoding(value, expected):
    result = fields(weight=value).number("weight", 1.0, -1.0, 10.0)
    assert result == pytest.approx(expected) and isinstance(result, float)


@pytest.mark.parametrize("value", ["nan", float("nan"), "inf", float("-inf"), b"-Infinity", "x", True, [], "1,5"])
def test_number_rejects_non_finite_and_text(value):
    with pytest.raises(InvalidField) as error:
        fields(weight=value).number("weight", 1.0, -1e9, 1e9)
    assert_names_field(error, "weight")


@pytest.mark.parametrize("value, low, high", [("-0.01", 0.0, 1.0), (1.5, 0.0, 1.0), (b"-2", -1, 1)])
def test_number_range(value, low, high):
    with pytest.raises(InvalidField) as error:
        fields(weight=value).number("weight", 0.5, low, high)
    assert_names_field(error, "weight")
    assert f"{low:g} to {high:g}" in error.value.message


def test_number_default_and_bounds_inclusive():
    assert fields().number("weight", 0.25, 0, 1) == 0.25
    assert fields(weight=b"").number("weight", 0.25, 0, 1) == 0.25
    assert fields(weight="0").number("weight", 0.25, 0, 1) == 0.0
    assert fields(weight="1").number("weight", 0.25, 0, 1) == 1.0


# ---------------------------------------------------------------- boolean


@pytest.mark.parametrize(
    "value",
    [True, 1, 1.0, "true", "TRUE", " True ", b"true", bytearray(b"1"), "1", "yes", "on", [True], [b"yes"]],
)
def test_boolean_true(value):
    assert fields(stream=value).boolean("stream", False) is True


@pytest.mark.parametrize("value", [False, 0, 0.0, "false", b"FALSE", "0", b"0", "no", "off", [False]])
def test_boolean_false(value):
    assert fields(stream=value).boolean("stream", True) is False


def test_boolean_default_when_absent():
    assert fields().boolean("stream", True) is True
    assert fields(stream=None).boolean("stream", False) is False


@pytest.mark.parametrize("value", ["maybe", b"2", 2, -1, 0.5, float("nan"), "tru"])
def test_boolean_rejects_other_values(value):
    with pytest.raises(InvalidField) as error:
        fields(stream=value).boolean("stream", False)
    assert_names_field(error, "stream")
    assert "true or false" in error.value.message


@pytest.mark.parametrize("value", [b"\xff", {"a": 1}, [1, 2]])
def test_boolean_rejects_non_text(value):
    with pytest.raises(InvalidField) as error:
        fields(stream=value).boolean("stream", False)
    assert_names_field(error, "stream")


# ---------------------------------------------------------------- choice


@pytest.mark.parametrize("value, expected", [("PNG", "png"), (b" jpeg ", "jpeg"), (["Webp"], "webp")])
def test_choice_is_normalised(value, expected):
    assert fields(format=value).choice("format", ("png", "jpeg", "webp"), "png") == expected


@pytest.mark.parametrize("value", [None, "", b""])
def test_choice_default(value):
    assert fields(format=value).choice("format", ("png", "jpeg"), "jpeg") == "jpeg"


@pytest.mark.parametrize("value", ["gif", b"pn g", True, 3, "x" * 500])
def test_choice_rejects_and_lists_choices(value):
    with pytest.raises(InvalidField) as error:
        fields(format=value).choice("format", ("png", "jpeg", "webp"), "png")
    assert_names_field(error, "format")
    assert "png, jpeg, webp" in error.value.message
    assert len(error.value.message) < 200  # a long value is cut, not echoed whole


# ---------------------------------------------------------------- text


@pytest.mark.parametrize(
    "value, expected",
    [
        (b"a cat", "a cat"),
        ("a cat", "a cat"),
        ("caf\u00e9".encode(), "caf\u00e9"),
        ("tab\tnew\nline\r", "tab\tnew\nline\r"),
        (5, "5"),
        (True, "true"),
        (["x"], "x"),
    ],
)
def test_text_accepts(value, expected):
    assert fields(prompt=value).text("prompt", None, 100) == expected


def test_text_default_and_limit_inclusive():
    assert fields().text("prompt", "dflt", 3) == "dflt"
    assert fields(prompt="abc").text("prompt", None, 3) == "abc"


def test_text_over_length_is_413():
    with pytest.raises(TooLarge) as error:
        fields(prompt="abcd").text("prompt", None, 3)
    assert_names_field(error, "prompt", 413)
    assert "3" in error.value.message


@pytest.mark.parametrize("value", ["a\x00b", "\x1b[31m", b"bell\x07", "x\x0b"])
def test_text_rejects_control_characters(value):
    with pytest.raises(InvalidField) as error:
        fields(prompt=value).text("prompt", None, 100)
    assert_names_field(error, "prompt")


@pytest.mark.parametrize("value", [b"\xff\xfe", {"a": 1}, [1, 2]])
def test_text_rejects_non_text(value):
    with pytest.raises(InvalidField) as error:
        fields(prompt=value).text("prompt", None, 100)
    assert_names_field(error, "prompt")


# ---------------------------------------------------------------- known fields, has


def test_unknown_field_is_named():
    with pytest.raises(InvalidField) as error:
        fields(styel=b"candy", image=b"x").check_known(("image", "style", "format"))
    assert_names_field(error, "styel")
    assert "format, image, style" in error.value.message


def test_first_unknown_field_is_named_deterministically():
    with pytest.raises(InvalidField) as error:
        fields(zzz=1, aaa=2).check_known(())
    assert error.value.field == "aaa"


def test_known_fields_pass():
    fields(image=b"x", style=b"y").check_known(["image", "style", "extra"])


@pytest.mark.parametrize(
    "value, present",
    [(None, False), (b"", False), ("", False), (bytearray(), False), (b"x", True), (0, True), (False, True)],
)
def test_has(value, present):
    assert fields(a=value).has("a") is present
    assert fields().has("a") is False


# ---------------------------------------------------------------- image_bytes


def test_raw_image_bytes_pass_through(png_bytes):
    assert fields(image=png_bytes).image_bytes("image", 10_000) == png_bytes
    result = fields(image=bytearray(png_bytes)).image_bytes("image", 10_000)
    assert result == png_bytes and type(result) is bytes


def test_raw_jpeg_and_webp_bytes_pass_through(save_image):
    from PIL import Image

    for fmt in ("JPEG", "WEBP"):
        data = save_image(Image.new("RGB", (4, 4), (1, 2, 3)), fmt)
        assert fields(image=data).image_bytes("image", 10_000) == data


@pytest.mark.parametrize(
    "wrap",
    [
        lambda b: base64.b64encode(b).decode(),  # JSON
        lambda b: base64.b64encode(b),  # gRPC / v2 BYTES carrying base64 text
        lambda b: "data:image/png;base64," + base64.b64encode(b).decode(),
        lambda b: b"data:image/png;base64," + base64.b64encode(b),
        lambda b: "data:image/svg+xml;base64," + base64.b64encode(b).decode(),
        lambda b: "  " + base64.b64encode(b).decode() + "\n",
        lambda b: [base64.b64encode(b).decode()],
    ],
)
def test_base64_images_are_decoded(png_bytes, wrap):
    assert fields(image=wrap(png_bytes)).image_bytes("image", 10_000) == png_bytes


def test_line_wrapped_base64_is_decoded(png_bytes):
    wrapped = base64.encodebytes(png_bytes * 3)  # > 76 chars -> several lines
    assert b"\n" in wrapped.strip()
    assert fields(image=wrapped.decode()).image_bytes("image", 10_000) == png_bytes * 3


@pytest.mark.parametrize(
    "value", ["not base64!!", "abc", "data:image/png;base64,@@@", "\u00e9\u00e9\u00e9\u00e9", b"QUJD=QUJD"]
)
def test_invalid_base64_is_400(value):
    with pytest.raises(InvalidField) as error:
        fields(image=value).image_bytes("image", 10_000)
    assert_names_field(error, "image")
    assert "base64" in error.value.message


def test_oversize_base64_is_413_before_decoding():
    payload = base64.b64encode(b"\0" * 2000).decode() + "!"  # invalid too: size is checked first
    with pytest.raises(TooLarge) as error:
        fields(image=payload).image_bytes("image", 999)
    assert_names_field(error, "image", 413)
    assert "999" in error.value.message


def test_decoded_base64_over_max_bytes_by_one_is_413():
    with pytest.raises(TooLarge):
        fields(image=base64.b64encode(b"\0" * 1000)).image_bytes("image", 999)


def test_base64_at_exactly_max_bytes_is_accepted():
    data = bytes(range(256)) * 4
    assert fields(image=base64.b64encode(data)).image_bytes("image", len(data)) == data


@pytest.mark.parametrize("value", [None, b"", "", bytearray()])
def test_missing_image_is_required(value):
    with pytest.raises(InvalidField) as error:
        fields(image=value).image_bytes("image", 100)
    assert_names_field(error, "image")
    assert "required" in error.value.message


@pytest.mark.parametrize("value", [5, {"a": 1}, True, [b"a", b"b"]])
def test_image_of_wrong_type_is_400(value):
    with pytest.raises(InvalidField) as error:
        fields(image=value).image_bytes("image", 100)
    assert_names_field(error, "image")
