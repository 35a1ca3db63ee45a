"""parse_payload: every request encoding of API.md, as TorchServe hands it to the handler."""

import base64
import json

import pytest

from handlers.common.errors import InvalidField
from handlers.common.fields import Fields
from handlers.common.payload import parse_payload

JSON = {"Content-Type": "application/json"}


def test_multipart_fields_are_separate_keys(png_bytes):
    raw = {"image": bytearray(png_bytes), "style": bytearray(b"candy"), "quality": bytearray(b"80")}
    payload = parse_payload(raw, {"Content-Type": "multipart/form-data; boundary=x"}, "image")
    assert payload.oip is None
    assert payload.fields == raw
    fields = Fields(payload.fields)
    assert fields.image_bytes("image", 10_000) == png_bytes
    assert fields.choice("style", ("candy", "mosaic"), "mosaic") == "candy"
    assert fields.integer("quality", 90, 1, 100) == 80


def test_parsed_json_body(png_bytes):
    body = {"image": "data:image/png;base64," + base64.b64encode(png_bytes).decode(), "steps": 5, "stream": True}
    payload = parse_payload({"body": body}, JSON, "image")
    assert payload.fields == body and payload.oip is None
    assert Fields(payload.fields).image_bytes("image", 10_000) == png_bytes


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", " application/json ;charset=UTF-8"]
)
def test_json_bytes_body(content_type):
    payload = parse_payload({"body": bytearray(b'{"steps": 5}')}, {"Content-Type": content_type}, "image")
    assert payload.fields == {"steps": 5}


def test_text_body_is_read_as_json():
    # TorchServe decodes text/* bodies to str.
    assert parse_payload({"body": '{"prompt": "a cat"}'}, {"Content-Type": "text/plain"}, None).fields == {
        "prompt": "a cat"
    }


def test_raw_body_fills_the_raw_image_field(png_bytes):
    payload = parse_payload({"body": bytearray(png_bytes)}, {"Content-Type": "image/png"}, "content")
    assert payload.fields == {"content": png_bytes}
    assert type(payload.fields["content"]) is bytes


def test_raw_body_under_data_key(png_bytes):
    payload = parse_payload({"data": bytearray(png_bytes)}, {"Content-Type": "image/png"}, "image")
    assert payload.fields == {"image": png_bytes}


def test_invocations_query_fields_and_model_name_dropped(png_bytes):
    raw = {
        "body": bytearray(png_bytes),
        "model_name": bytearray(b"fast_style"),
        "style": bytearray(b"mosaic"),
        "max_side_px": bytearray(b"256"),
    }
    payload = parse_payload(raw, {"content-type": "image/jpeg"}, "image")
    assert payload.fields == {"image": png_bytes, "style": b"mosaic", "max_side_px": b"256"}


def test_model_name_dropped_without_body():
    payload = parse_payload({"model_name": "m", "style": b"candy"}, {}, "image")
    assert payload.fields == {"style": b"candy"}


def test_grpc_input_map(png_bytes):
    raw = {"image": png_bytes, "style": b"udnie", "max_side_px": b"512"}
    payload = parse_payload(raw, {}, "image")
    assert payload.fields == raw
    assert Fields(payload.fields).integer("max_side_px", 0, 1, 8192) == 512


def test_raw_body_for_a_model_without_raw_image_is_400(png_bytes):
    with pytest.raises(InvalidField) as error:
        parse_payload({"body": bytearray(png_bytes)}, {"Content-Type": "image/png"}, None)
    assert error.value.status == 400 and error.value.field == "body"


@pytest.mark.parametrize("body", [b"{not json", b"", b"\xff\xfe{}", bytearray(b'{"a": 1'), b"nan"])
def test_invalid_json_bytes_is_400_body(body):
    with pytest.raises(InvalidField) as error:
        parse_payload({"body": body}, JSON, "image")
    assert error.value.field == "body" and "JSON" in error.value.message


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"5", b"null", "[]"])
def test_json_that_is_not_an_object_is_400(body):
    with pytest.raises(InvalidField) as error:
        parse_payload({"body": body}, JSON, "image")
    assert error.value.field == "body"


@pytest.mark.parametrize("body", [[1, 2], [{"a": 1}], 5, 2.5, True])
def test_parsed_json_non_object_is_400(body):
    with pytest.raises(InvalidField) as error:
        parse_payload({"body": body}, JSON, "image")
    assert error.value.field == "body"


def test_parsed_json_number_is_never_an_image():
    with pytest.raises(InvalidField):
        parse_payload({"body": 5}, {}, "image")


@pytest.mark.parametrize("name", ["content-type", "CONTENT-TYPE", "Content-Type", "cOnTeNt-TyPe"])
def test_header_names_in_any_case(name):
    with pytest.raises(InvalidField) as error:
        parse_payload({"body": b"{broken"}, {name: "application/json"}, "image")
    assert error.value.field == "body"


def test_content_type_value_in_any_case():
    payload = parse_payload({"body": b'{"steps": 5}'}, {"Content-Type": "Application/JSON"}, "image")
    assert payload.fields == {"steps": 5}


@pytest.mark.parametrize(
    "name", ["Inference-Header-Content-Length", "inference-header-content-length", "INFERENCE-HEADER-CONTENT-LENGTH"]
)
def test_binary_oip_header_in_any_case(name):
    header = json.dumps(
        {"inputs": [{"name": "style", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 9}}]}
    ).encode()
    body = header + b"\x05\x00\x00\x00candy"
    payload = parse_payload({"body": bytearray(body)}, {name: str(len(header))}, "image")
    assert payload.fields == {"style": b"candy"}
    assert payload.oip is not None


def test_oip_json_body_is_recognised():
    body = {"id": "7", "inputs": [{"name": "steps", "datatype": "INT64", "shape": [1], "data": [3]}]}
    payload = parse_payload({"body": body}, JSON, None)
    assert payload.fields == {"steps": 3}
    assert payload.oip.id == "7"


def test_query_fields_merge_with_json_body():
    payload = parse_payload({"body": {"steps": 5}, "seed": bytearray(b"1")}, JSON, None)
    assert payload.fields == {"steps": 5, "seed": b"1"}


def test_no_body_and_no_fields():
    assert parse_payload({}, {}, "image").fields == {}


@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"a": ' + b"[" * 100_000, '{"a": ' * 100_000])
def test_json_nested_past_the_parsers_depth_is_400_body(body):
    """TorchServe forwards such a body unparsed (its own json.loads fails); ours must not 500."""
    with pytest.raises(InvalidField) as error:
        parse_payload({"body": body}, JSON, "image")
    assert error.value.field == "body" and "deep" in error.value.message


def test_v2_tensors_of_unknown_names_are_refused_when_the_fields_are_known():
    body = {"inputs": [{"name": "style", "datatype": "BYTES", "data": ["candy"]}, {"name": "styel", "data": ["x"]}]}
    with pytest.raises(InvalidField) as error:
        parse_payload({"body": body}, JSON, "image", frozenset({"image", "style"}))
    assert error.value.field == "styel" and "unknown input" in error.value.message
    assert parse_payload({"body": body}, JSON, "image").fields == {"style": "candy", "styel": "x"}
