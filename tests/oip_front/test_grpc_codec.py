"""ModelInfer <-> v2 REST with binary tensor data, on Triton's own messages (tritonclient's
generated classes: the same wire format and field names as the front's, grpc_service.proto)."""

import json
import struct

import numpy as np
import pytest
from tritonclient.grpc import service_pb2

from oipfront.grpc_service import from_rest, to_rest
from oipfront.service import InferAnswer, OipError


def split(body: bytes, header_length: int) -> tuple:
    return json.loads(body[:header_length]), body[header_length:]


def test_raw_input_contents_become_binary_tensor_data_unchanged():
    request = service_pb2.ModelInferRequest(model_name="fast_style", id="r1")
    request.inputs.add(name="style", datatype="BYTES", shape=[1, 1])
    request.inputs.add(name="max_side_px", datatype="INT64", shape=[1])
    style = struct.pack("<I", 5) + b"candy"
    request.raw_input_contents.extend([style, np.int64(64).tobytes()])
    header, blob = split(*to_rest(request))
    assert [(t["name"], t["shape"], t["parameters"]["binary_data_size"]) for t in header["inputs"]] == [
        ("style", [1, 1], len(style)),
        ("max_side_px", [1], 8),
    ]
    assert blob == style + np.int64(64).tobytes()
    assert header["id"] == "r1" and header["parameters"] == {"binary_data_output": True}


def test_typed_contents_give_the_same_bytes_as_raw_ones():
    request = service_pb2.ModelInferRequest(model_name="txt2img")
    prompt = request.inputs.add(name="prompt", datatype="BYTES", shape=[1])
    prompt.contents.bytes_contents.append(b"a harbour")
    steps = request.inputs.add(name="steps", datatype="INT64", shape=[1])
    steps.contents.int64_contents.append(4)
    guidance = request.inputs.add(name="guidance", datatype="FP32", shape=[1])
    guidance.contents.fp32_contents.append(7.5)
    _, blob = split(*to_rest(request))
    assert blob == struct.pack("<I", 9) + b"a harbour" + np.int64(4).tobytes() + np.float32(7.5).tobytes()


def test_raw_contents_must_match_the_inputs():
    request = service_pb2.ModelInferRequest(model_name="fast_style")
    request.inputs.add(name="style", datatype="BYTES", shape=[1])
    request.inputs.add(name="format", datatype="BYTES", shape=[1])
    request.raw_input_contents.append(b"\x00\x00\x00\x00")
    with pytest.raises(OipError) as refused:
        to_rest(request)
    assert refused.value.status == 400


def test_binary_outputs_become_raw_output_contents_in_order():
    image, metadata = struct.pack("<I", 3) + b"PNG", struct.pack("<I", 2) + b"{}"
    header = json.dumps({"model_name": "fast_style", "model_version": "1.0", "id": "r1", "outputs": [
        {"name": "image", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": len(image)}},
        {"name": "metadata", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": len(metadata)}},
    ]}).encode()  # fmt: skip
    answer = InferAnswer(header + image + metadata, len(header), json.loads(header))
    response = from_rest(answer, service_pb2)
    assert (response.model_name, response.model_version, response.id) == ("fast_style", "1.0", "r1")
    assert [o.name for o in response.outputs] == ["image", "metadata"]
    assert list(response.raw_output_contents) == [image, metadata]
