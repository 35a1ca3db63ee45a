"""Property tests: whatever a client sends, decoding ends in a value or a RequestError (a 4xx),
never in any other exception (a 500, or a dead worker).

Each property runs over two input spaces: the ordinary one, and a full one that adds the
shapes of bugs found before (huge JSON integers, parsed JSON bodies that are not objects, v2
'parameters'/'outputs' that are not objects, v2 output names that are not strings, JSON nested
past the parser's depth) as regression tests.
"""

import io
import json
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from handlers.common.errors import RequestError
from handlers.common.fields import Fields
from handlers.common.images import ImageLimits, decode_image
from handlers.common.oip import HEADER_LENGTH, parse_oip
from handlers.common.payload import parse_payload

FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,  # write nothing into the repository
    derandomize=True,  # the same examples every run: a failure reproduces
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SMALL = ImageLimits(max_bytes=64 * 1024, max_pixels=256 * 256, max_side_px=512)
FIELD_NAMES = ["image", "style", "steps", "stream", "format", "prompt", "seed"]
CLIENT_STATUSES = {400, 413, 422}


def _save(image, fmt, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


_FRAMES = [Image.new("RGB", (6, 5), c) for c in [(255, 0, 0), (0, 255, 0)]]
SEED_IMAGES = [
    _save(Image.effect_noise((12, 9), 40).convert("RGB"), "PNG"),
    _save(Image.effect_noise((12, 9), 40).convert("RGB"), "JPEG", quality=70),
    _save(Image.new("RGBA", (5, 4), (1, 2, 3, 4)), "WEBP"),
    _save(_FRAMES[0], "PNG", save_all=True, append_images=_FRAMES[1:]),
    _save(Image.new("P", (3, 3)), "PNG", transparency=0),
]


def _expect_value_or_request_error(call):
    try:
        return call()
    except RequestError as error:
        assert error.status in CLIENT_STATUSES, error
        assert isinstance(error.message, str) and error.message
        assert error.field is None or isinstance(error.field, str)
        return None


# ---------------------------------------------------------------- strategies


def integers(space):
    bounded = st.integers(-(2**63), 2**63)
    if space == "sound":
        return bounded
    too_big_for_float = st.integers(2**1024, 10**400)
    return st.one_of(bounded, too_big_for_float, too_big_for_float.map(lambda n: -n))


def json_values(space):
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        integers(space),
        st.floats(),
        st.text(max_size=20),
        st.sampled_from(["nan", "-inf", "1e3", "7.0", "true", "PNG", " yes ", "data:image/png;base64,"]),
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
        max_leaves=5,
    )


def wire_values():
    """What multipart, gRPC and query strings carry: bytes."""
    return st.one_of(
        st.binary(max_size=64),
        st.binary(max_size=64).map(bytearray),
        st.sampled_from(SEED_IMAGES),
        st.text(max_size=20).map(str.encode),
    )


def field_values(space):
    values = st.one_of(wire_values(), json_values(space))
    if space == "full":
        values = st.one_of(values, integers(space))  # scalars at the top, where getters look
    return values


def json_object(space):
    return st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=6), field_values(space), max_size=5)


def oip_tensor(space):
    parameters = st.one_of(
        st.none(),
        st.fixed_dictionaries({}, optional={"binary_data_size": st.integers(-2, 40) | json_values("sound")}),
    )
    if space == "full":
        parameters = parameters | json_values(space)
    return st.fixed_dictionaries(
        {"name": st.sampled_from(FIELD_NAMES) | st.text(max_size=4)},
        optional={
            "datatype": st.sampled_from(["BYTES", "INT64", "FP32", "BOOL", "FP16", "UINT8", "BF16", "x"]),
            "shape": st.lists(st.integers(0, 3), max_size=2),
            "data": json_values(space),
            "parameters": parameters,
        },
    )


def oip_body(space):
    output_name = st.sampled_from(["image", "metadata"])
    if space == "full":
        output_name = output_name | json_values(space)  # e.g. a name sent as a list
    output_entry = st.fixed_dictionaries(
        {"name": output_name},
        optional={"parameters": st.fixed_dictionaries({}, optional={"binary_data": st.booleans()})},
    )
    outputs = st.none() | st.lists(output_entry, max_size=3)
    parameters = st.none() | st.fixed_dictionaries({}, optional={"binary_data_output": st.booleans()})
    if space == "full":
        outputs = outputs | json_values(space)
        parameters = parameters | json_values(space)
    return st.fixed_dictionaries(
        {"inputs": st.lists(oip_tensor(space) | json_values("sound"), max_size=4)},
        optional={"id": st.text(max_size=5) | st.none(), "outputs": outputs, "parameters": parameters},
    )


def bodies(space):
    body = st.one_of(
        st.binary(max_size=200),
        st.sampled_from(SEED_IMAGES),
        st.text(max_size=50),
        json_object(space),
        oip_body(space),
        oip_body(space).map(lambda b: json.dumps(b).encode()),
    )
    if space == "full":
        # TorchServe parses any JSON body, arrays and scalars too; one nested past its parser's
        # depth it forwards unparsed.
        too_deep = st.integers(1, 3000).flatmap(
            lambda n: st.sampled_from([b"[" * n, b'{"a":' * n, b'{"inputs": [{"name": "x", "data": ' + b"[" * n])
        )
        body = st.one_of(body, st.lists(json_values(space), max_size=3), json_values(space), too_deep)
    return body


def headers():
    def cased(name):
        return st.sampled_from([name, name.lower(), name.upper()])

    content_type = st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "image/png",
            "text/plain",
            "multipart/form-data",
            "",
            "application/octet-stream",
        ]
    )
    return st.fixed_dictionaries(
        {},
        optional={
            "content-type": content_type,
            "inference-header-content-length": st.integers(-5, 300).map(str) | st.text(max_size=4),
        },
    ).flatmap(lambda found: st.tuples(*[cased(k) for k in found]).map(lambda names: dict(zip(names, found.values()))))


def apply_every_getter(fields: Fields, name: str):
    _expect_value_or_request_error(lambda: fields.integer(name, 1, -100, 100))
    _expect_value_or_request_error(lambda: fields.number(name, 0.5, -1e6, 1e6))
    _expect_value_or_request_error(lambda: fields.boolean(name, False))
    _expect_value_or_request_error(lambda: fields.choice(name, ("png", "jpeg", "webp"), "png"))
    _expect_value_or_request_error(lambda: fields.text(name, None, 50))
    _expect_value_or_request_error(lambda: fields.has(name))
    data = _expect_value_or_request_error(lambda: fields.image_bytes(name, SMALL.max_bytes))
    if data is not None:
        image = _expect_value_or_request_error(lambda: decode_image(data, name, SMALL))
        if image is not None:
            assert image.mode == "RGB"


# ---------------------------------------------------------------- properties


@FUZZ
@given(data=st.binary(max_size=512))
def test_any_bytes_decode_or_refuse(data):
    image = _expect_value_or_request_error(lambda: decode_image(data, "image", SMALL))
    assert image is None or image.mode == "RGB"


@pytest.mark.filterwarnings("ignore:Invalid APNG")  # Pillow's note on a damaged animation chunk
@FUZZ
@given(
    seed=st.sampled_from(SEED_IMAGES),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=6),
    cut=st.integers(0, 10**6),
)
def test_mutated_images_decode_or_refuse(seed, edits, cut):
    data = bytearray(seed)
    for position, value in edits:
        data[position % len(data)] = value
    data = bytes(data[: max(1, len(data) - cut % len(data))])
    image = _expect_value_or_request_error(lambda: decode_image(data, "image", SMALL))
    assert image is None or image.mode == "RGB"


def check_field_dict(space, data):
    values = data.draw(st.dictionaries(st.sampled_from(FIELD_NAMES), field_values(space), max_size=4))
    fields = Fields(values)
    _expect_value_or_request_error(lambda: fields.check_known(FIELD_NAMES[:3]))
    for name in list(values) + ["absent"]:
        apply_every_getter(fields, name)


def check_request(space, data):
    raw = data.draw(st.dictionaries(st.sampled_from(FIELD_NAMES + ["model_name"]), wire_values(), max_size=3))
    if data.draw(st.booleans()):
        raw[data.draw(st.sampled_from(["body", "data"]))] = data.draw(bodies(space))
    request_headers = data.draw(headers())
    raw_image_field = data.draw(st.sampled_from([None, "image"]))
    payload = _expect_value_or_request_error(lambda: parse_payload(raw, request_headers, raw_image_field))
    if payload is None:
        return
    assert "model_name" not in payload.fields  # no body strategy makes a key that long
    fields = Fields(payload.fields)
    for name in list(payload.fields)[:4]:
        apply_every_getter(fields, name)


@FUZZ
@given(data=st.data())
def test_any_field_dict_through_every_getter(data):
    check_field_dict("sound", data)


@FUZZ
@given(data=st.data())
def test_any_field_dict_through_every_getter_full_input_space(data):
    check_field_dict("full", data)


@FUZZ
@given(data=st.data())
def test_any_request_through_parse_payload_and_getters(data):
    check_request("sound", data)


@FUZZ
@given(data=st.data())
def test_any_request_through_parse_payload_and_getters_full_input_space(data):
    check_request("full", data)


# ---------------------------------------------------------------- v2 binary extension

bytes_elements = st.lists(st.binary(max_size=24), min_size=1, max_size=3)
int64_elements = st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=3)


@st.composite
def binary_requests(draw):
    """A v2 request with the binary extension, built by hand after Triton's spec, and the fields
    it must decode to."""
    tensors, blobs, expected = [], [], {}
    for index in range(draw(st.integers(1, 4))):
        name = f"t{index}"
        if draw(st.booleans()):
            values = draw(bytes_elements)
            blob = b"".join(struct.pack("<I", len(v)) + v for v in values)
            datatype = "BYTES"
        else:
            values = draw(int64_elements)
            blob = struct.pack(f"<{len(values)}q", *values)
            datatype = "INT64"
        tensors.append(
            {"name": name, "datatype": datatype, "shape": [len(values)], "parameters": {"binary_data_size": len(blob)}}
        )
        blobs.append(blob)
        expected[name] = values[0] if len(values) == 1 else values
    header = json.dumps({"inputs": tensors}).encode()
    return header + b"".join(blobs), len(header), expected


@FUZZ
@given(request=binary_requests())
def test_binary_requests_decode_exactly(request):
    body, header_length, expected = request
    fields, oip = parse_oip(body, str(header_length))
    assert fields == expected


@FUZZ
@given(request=binary_requests(), cut=st.integers(1, 10**6), flip=st.integers(0, 10**6))
def test_damaged_binary_requests_decode_or_refuse(request, cut, flip):
    body, header_length, _ = request
    damaged = bytearray(body[: len(body) - cut % len(body)])
    if damaged:
        damaged[flip % len(damaged)] ^= 0xFF
    _expect_value_or_request_error(
        lambda: parse_payload({"body": damaged}, {HEADER_LENGTH: str(header_length)}, "image")
    )


# ---------------------------------------------------------------- shapes of earlier 500s


@FUZZ
@given(name=json_values("full"), binary=st.booleans())
def test_any_v2_output_name_decodes_or_refuses(name, binary):
    """An output name that is not a string (a list was a 500) is a 400 naming 'outputs'."""
    body = {"inputs": [], "outputs": [{"name": name, "parameters": {"binary_data": binary}}]}
    _expect_value_or_request_error(lambda: parse_oip(body, None))


@FUZZ
@given(depth=st.integers(1, 200_000), opener=st.sampled_from(["[", '{"a": ', '{"inputs": [{"name": "x", "data": ']))
def test_json_nested_to_any_depth_decodes_or_refuses(depth, opener):
    """TorchServe hands on a body its own parser could not read (too deep) as it came."""
    body = opener * depth
    for raw, headers in (({"body": body}, {}), ({"body": body.encode()}, {"Content-Type": "application/json"})):
        _expect_value_or_request_error(lambda raw=raw, headers=headers: parse_payload(raw, headers, "image"))
