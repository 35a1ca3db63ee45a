"""Open Inference Protocol v2: JSON requests, Triton's binary tensor data extension exactly as
tritonclient 2.x builds it, and responses that tritonclient parses back."""

import base64
import json
import struct

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.http._utils import _get_inference_request

from handlers.common.errors import InvalidField, TooLarge
from handlers.common.fields import Fields
from handlers.common.oip import HEADER_LENGTH, OipOutput, OipRequest, encode_oip, parse_oip
from handlers.common.payload import parse_payload


def triton_request(inputs, outputs=None, request_id=""):
    """(body bytes, header length or None) as tritonclient.http.InferenceServerClient.infer sends."""
    return _get_inference_request(
        inputs=inputs,
        request_id=request_id,
        outputs=outputs,
        sequence_id=0,
        sequence_start=False,
        sequence_end=False,
        priority=0,
        timeout=None,
        custom_parameters=None,
    )


def bytes_input(name, values, binary=True):
    tensor = triton.InferInput(name, [len(values)], "BYTES")
    tensor.set_data_from_numpy(np.array(values, dtype=np.object_), binary_data=binary)
    return tensor


def numeric_input(name, values, datatype, dtype, binary=True):
    tensor = triton.InferInput(name, [len(values)], datatype)
    tensor.set_data_from_numpy(np.array(values, dtype=dtype), binary_data=binary)
    return tensor


def binary_header(inputs: list) -> bytes:
    return json.dumps({"inputs": inputs}).encode()


# ---------------------------------------------------------------- JSON requests


def test_json_request():
    body = {
        "id": "req-1",
        "inputs": [
            {"name": "style", "datatype": "BYTES", "shape": [1], "data": ["candy"]},
            {"name": "steps", "datatype": "INT64", "shape": [1], "data": [5]},
            {"name": "weight", "datatype": "FP32", "shape": [1, 1], "data": [[0.5]]},
            {"name": "pair", "datatype": "INT64", "shape": [2], "data": [1, 2]},
            {"name": "scalar", "datatype": "INT64", "shape": [], "data": 9},
        ],
    }
    fields, request = parse_oip(body, None)
    assert fields == {"style": "candy", "steps": 5, "weight": 0.5, "pair": [1, 2], "scalar": 9}
    assert request == OipRequest(id="req-1")
    assert not request.wants_binary("image")


def test_json_request_outputs_and_binary_flags():
    body = {
        "inputs": [],
        "outputs": [{"name": "image", "parameters": {"binary_data": True}}, {"name": "metadata"}],
    }
    _, request = parse_oip(body, None)
    assert request.requested_outputs == ("image", "metadata")
    assert request.wants_binary("image") and not request.wants_binary("metadata")
    _, request = parse_oip({"inputs": [], "parameters": {"binary_data_output": True}}, None)
    assert request.all_binary and request.wants_binary("metadata")


@pytest.mark.parametrize(
    "body",
    [{}, {"inputs": "x"}, {"inputs": [{"datatype": "BYTES"}]}, {"inputs": [{"name": 5}]}, {"inputs": ["style"]}, [1]],
)
def test_malformed_json_requests_are_400(body):
    with pytest.raises(InvalidField) as error:
        parse_oip(body, None)
    assert error.value.status == 400


@pytest.mark.parametrize(
    "body",
    [
        {"inputs": [{"name": "a", "data": [1], "parameters": [1]}]},
        {"inputs": [], "parameters": "binary"},
        {"inputs": [], "outputs": ["image"]},
        {"inputs": [], "outputs": 3},
        {"inputs": [], "outputs": [{"name": "image", "parameters": 1}]},
        {"inputs": [], "outputs": [{"name": ["image"]}]},
        {"inputs": [], "outputs": [{"name": {"a": 1}, "parameters": {"binary_data": True}}]},
        {"inputs": [], "outputs": [{"parameters": {"binary_data": True}}]},
    ],
    ids=["bad_tensor_parameters", "bad_parameters", "output_string", "outputs_int", "output_parameters_int"]
    + ["output_name_list", "output_name_object", "output_without_name"],
)
def test_malformed_parameters_and_outputs_are_400(body):
    with pytest.raises(InvalidField) as error:
        parse_oip(body, None)
    assert error.value.field in ("outputs", "parameters", "a")


def test_json_tensor_data_nested_too_deeply_is_400():
    data = [1]
    for _ in range(900):  # under Python's recursion limit for json, over any tensor's rank
        data = [data]
    with pytest.raises(InvalidField) as error:
        parse_oip({"inputs": [{"name": "steps", "datatype": "INT64", "data": data}]}, None)
    assert error.value.field == "steps" and "deeper" in error.value.message


def test_json_tensor_with_more_values_than_a_field_is_413():
    body = {"inputs": [{"name": "steps", "datatype": "INT64", "data": list(range(100_000))}]}
    with pytest.raises(TooLarge) as error:
        parse_oip(body, None)
    assert error.value.field == "steps" and error.value.status == 413


def test_a_64_mib_numeric_tensor_is_413_before_its_data_is_read(monkeypatch):
    size = 64 * 2**20
    header = binary_header(
        [{"name": "steps", "datatype": "INT64", "shape": [size // 8], "parameters": {"binary_data_size": size}}]
    )
    monkeypatch.setattr(np, "frombuffer", lambda *a, **k: pytest.fail("tensor data was read"))
    with pytest.raises(TooLarge) as error:
        parse_oip(header + bytes(size), str(len(header)))
    assert error.value.field == "steps" and "at most" in error.value.message


def test_unknown_input_names_are_refused_before_any_data_is_read(monkeypatch):
    header = binary_header([{"name": "sise", "datatype": "INT64", "shape": [1], "parameters": {"binary_data_size": 8}}])
    monkeypatch.setattr(np, "frombuffer", lambda *a, **k: pytest.fail("tensor data was read"))
    with pytest.raises(InvalidField) as error:
        parse_oip(header + bytes(8), str(len(header)), frozenset({"size", "style"}))
    assert error.value.field == "sise" and "size, style" in error.value.message


# ---------------------------------------------------------------- binary extension (tritonclient)


def test_tritonclient_binary_request(png_bytes):
    inputs = [
        bytes_input("image", [png_bytes]),
        bytes_input("style", [b"candy"]),
        numeric_input("steps", [7], "INT64", np.int64),
        numeric_input("content_weight", [0.1], "FP32", np.float32),
        numeric_input("seed", [3], "INT64", np.int64, binary=False),  # JSON among binary inputs
        bytes_input("prompt", ["a cat"], binary=False),
    ]
    outputs = [
        triton.InferRequestedOutput("image", binary_data=True),
        triton.InferRequestedOutput("metadata", binary_data=False),
    ]
    body, header_length = triton_request(inputs, outputs, request_id="abc")
    assert header_length is not None  # the client did use the binary extension

    payload = parse_payload({"body": bytearray(body)}, {HEADER_LENGTH: str(header_length)}, "image")
    fields = Fields(payload.fields)
    assert fields.image_bytes("image", 10_000) == png_bytes
    assert fields.choice("style", ("candy",), "x") == "candy"
    assert fields.integer("steps", 1, 1, 100) == 7
    assert fields.number("content_weight", 1.0, 0, 1) == pytest.approx(0.1, rel=1e-6)
    assert fields.integer("seed", 0, 0, 10) == 3
    assert fields.text("prompt", None, 77) == "a cat"
    assert payload.oip.id == "abc"
    assert payload.oip.requested_outputs == ("image", "metadata")
    assert payload.oip.wants_binary("image") and not payload.oip.wants_binary("metadata")


def test_tritonclient_without_outputs_asks_all_binary():
    body, header_length = triton_request([bytes_input("style", [b"mosaic"])])
    fields, request = parse_oip(body, str(header_length))
    assert fields == {"style": b"mosaic"}
    assert request.all_binary and request.requested_outputs is None


def test_multi_element_bytes_tensor():
    body, header_length = triton_request([bytes_input("tags", [b"a", b"", b"ccc"])])
    fields, _ = parse_oip(body, str(header_length))
    assert fields == {"tags": [b"a", b"", b"ccc"]}


def test_hand_built_binary_request_matches_the_spec(png_bytes):
    # Spec: JSON header, then each binary input's raw bytes in input order; every BYTES element
    # is preceded by its length as a 4-byte little-endian unsigned integer.
    image_blob = struct.pack("<I", len(png_bytes)) + png_bytes
    steps_blob = struct.pack("<q", -2) + struct.pack("<q", 2**40)
    scale_blob = struct.pack("<f", 7.5)
    header = binary_header(
        [
            {"name": "image", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": len(image_blob)}},
            {"name": "steps", "datatype": "INT64", "shape": [2], "parameters": {"binary_data_size": 16}},
            {"name": "style", "datatype": "BYTES", "shape": [1], "data": ["udnie"]},
            {"name": "scale", "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": 4}},
        ]
    )
    fields, _ = parse_oip(header + image_blob + steps_blob + scale_blob, str(len(header)))
    assert fields == {"image": png_bytes, "steps": [-2, 2**40], "style": "udnie", "scale": 7.5}


def _style_request(element: bytes, size=None) -> tuple:
    header = binary_header(
        [
            {
                "name": "style",
                "datatype": "BYTES",
                "shape": [1],
                "parameters": {"binary_data_size": len(element) if size is None else size},
            }
        ]
    )
    return header + element, str(len(header))


@pytest.mark.parametrize(
    "cut",
    [1, 3, 5, 8],  # bytes removed from the end of a 9-byte BYTES blob
)
def test_truncated_bytes_blob_is_400(cut):
    body, length = _style_request(b"\x05\x00\x00\x00candy")
    with pytest.raises(InvalidField) as error:
        parse_oip(body[:-cut], length)
    assert error.value.field == "style"


@pytest.mark.parametrize(
    "element",
    [b"\x06\x00\x00\x00candy", b"\xff\xff\xff\xffcandy", b"\x05\x00\x00\x00candy\x01\x00"],
)
def test_inconsistent_bytes_element_length_is_400(element):
    body, length = _style_request(element)
    with pytest.raises(InvalidField) as error:
        parse_oip(body, length)
    assert error.value.field == "style" and "truncated" in error.value.message


def test_truncated_int64_blob_is_400():
    header = binary_header(
        [{"name": "steps", "datatype": "INT64", "shape": [1], "parameters": {"binary_data_size": 5}}]
    )
    with pytest.raises(InvalidField) as error:
        parse_oip(header + b"\x01\x00\x00\x00\x00", str(len(header)))
    assert error.value.field == "steps" and "INT64" in error.value.message


def test_tritonclient_body_cut_short_is_400(png_bytes):
    body, header_length = triton_request(
        [bytes_input("image", [png_bytes]), numeric_input("steps", [7], "INT64", np.int64)]
    )
    for cut in (1, 8, 9, len(png_bytes)):
        with pytest.raises(InvalidField):
            parse_oip(body[:-cut], str(header_length))


def test_trailing_bytes_after_declared_tensors_are_400():
    body, length = _style_request(b"\x05\x00\x00\x00candy")
    with pytest.raises(InvalidField) as error:
        parse_oip(body + b"x", length)
    assert "longer" in error.value.message


@pytest.mark.parametrize("size", [-1, "9", 9.0, 100])
def test_bad_binary_data_size_is_400(size):
    body, length = _style_request(b"\x05\x00\x00\x00candy", size=size)
    with pytest.raises(InvalidField):
        parse_oip(body, length)


def test_unsupported_binary_datatype_is_400():
    header = binary_header([{"name": "x", "datatype": "BF16", "shape": [1], "parameters": {"binary_data_size": 2}}])
    with pytest.raises(InvalidField) as error:
        parse_oip(header + b"\0\0", str(len(header)))
    assert "BF16" in error.value.message


@pytest.mark.parametrize("length", ["0", "-3", "abc", "", "1000", "5"])
def test_bad_header_length_is_400(length):
    body, _ = _style_request(b"\x05\x00\x00\x00candy")
    with pytest.raises(InvalidField) as error:
        parse_oip(body, length)
    assert error.value.field == "inputs"


def test_header_length_with_a_non_object_header_is_400():
    header = b"[1, 2]"
    with pytest.raises(InvalidField):
        parse_oip(header, str(len(header)))


# ---------------------------------------------------------------- encode_oip

IMAGE, META = b"\x89PNG-not-really\x00\xff", b'{"seeds": [1]}'
OUTPUTS = [OipOutput("image", "BYTES", [IMAGE]), OipOutput("metadata", "BYTES", [META], text=True)]


def test_json_response():
    body, headers = encode_oip(OUTPUTS, OipRequest(id="r9"), "fast_style", "2")
    assert headers == {"Content-Type": "application/json"}
    document = json.loads(body)
    assert document["id"] == "r9"
    assert (document["model_name"], document["model_version"]) == ("fast_style", "2")
    image, meta = document["outputs"]
    assert image == {"name": "image", "datatype": "BYTES", "shape": [1], "data": [base64.b64encode(IMAGE).decode()]}
    assert meta["data"] == [META.decode()]


def test_json_response_without_id_has_no_id():
    body, _ = encode_oip(OUTPUTS, OipRequest(id=None), "m", "1")
    assert "id" not in json.loads(body)


def parse_with_tritonclient(body: bytes, headers: dict):
    length = headers.get(HEADER_LENGTH)
    return triton.InferResult.from_response_body(body, header_length=int(length) if length else None)


def test_all_binary_response_parses_with_tritonclient():
    body, headers = encode_oip(OUTPUTS, OipRequest(id="r1", all_binary=True), "m", "1")
    assert headers["Content-Type"] == "application/octet-stream"
    header_length = int(headers[HEADER_LENGTH])
    header = json.loads(body[:header_length])
    assert [o["parameters"]["binary_data_size"] for o in header["outputs"]] == [4 + len(IMAGE), 4 + len(META)]
    result = parse_with_tritonclient(body, headers)
    assert result.as_numpy("image")[0] == IMAGE
    assert result.as_numpy("metadata")[0] == META
    assert result.get_response()["id"] == "r1"


def test_per_output_binary_data():
    request = OipRequest(id=None, binary_outputs=frozenset({"image"}))
    body, headers = encode_oip(OUTPUTS, request, "m", "1")
    header = json.loads(body[: int(headers[HEADER_LENGTH])])
    image, meta = header["outputs"]
    assert "data" not in image and image["parameters"]["binary_data_size"] == 4 + len(IMAGE)
    assert meta["data"] == [META.decode()] and "parameters" not in meta
    assert body[int(headers[HEADER_LENGTH]) :] == struct.pack("<I", len(IMAGE)) + IMAGE
    result = parse_with_tritonclient(body, headers)
    assert result.as_numpy("image")[0] == IMAGE


def test_requested_output_subset():
    request = OipRequest(id=None, requested_outputs=("metadata",))
    body, headers = encode_oip(OUTPUTS, request, "m", "1")
    assert [o["name"] for o in json.loads(body)["outputs"]] == ["metadata"]
    request = OipRequest(id=None, binary_outputs=frozenset({"image"}), requested_outputs=("image",))
    body, headers = encode_oip(OUTPUTS, request, "m", "1")
    result = parse_with_tritonclient(body, headers)
    assert result.as_numpy("metadata") is None
    assert result.as_numpy("image")[0] == IMAGE


def test_several_images_in_one_binary_tensor():
    images = [b"one", b"", b"three"]
    body, headers = encode_oip([OipOutput("image", "BYTES", images)], OipRequest(id=None, all_binary=True), "m", "1")
    result = parse_with_tritonclient(body, headers)
    assert result.as_numpy("image").tolist() == images
    assert result.get_output("image")["shape"] == [3]


def test_response_round_trips_through_tritonclient_request_flow(png_bytes):
    """A request built by tritonclient -> the request's output choices -> a response it parses."""
    outputs = [
        triton.InferRequestedOutput("image", binary_data=True),
        triton.InferRequestedOutput("metadata", binary_data=True),
    ]
    body, length = triton_request([bytes_input("image", [png_bytes])], outputs)
    _, request = parse_oip(body, str(length))
    reply, headers = encode_oip(OUTPUTS, request, "m", "1")
    result = parse_with_tritonclient(reply, headers)
    assert result.as_numpy("image")[0] == IMAGE
    assert json.loads(result.as_numpy("metadata")[0]) == {"seeds": [1]}
