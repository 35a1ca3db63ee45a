"""fast_style end to end against a real TorchServe: every encoding, style, format and error."""

import base64
import io
import json
from concurrent.futures import ThreadPoolExecutor
from unittest.mock import ANY

import numpy as np
import pytest
from PIL import Image
from support import assert_error, decode

STYLES = ("candy", "mosaic", "udnie", "rain_princess")


def stylize(server, photo, **fields):
    return server.predict("fast_style", files={"image": ("photo.jpg", photo)}, data=fields)


@pytest.mark.parametrize("style", STYLES)
def test_every_style_keeps_the_photo_size(server, photo_png, style):
    response = stylize(server, photo_png, style=style)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "image/png"
    image = decode(response)
    assert image.format == "PNG" and image.size == (451, 300) and image.mode == "RGB"


def test_styles_differ_from_each_other(server, photo_jpeg):
    outputs = {s: stylize(server, photo_jpeg, style=s, max_side_px=64).content for s in STYLES}
    assert len(set(outputs.values())) == len(STYLES)


def test_max_side_px_caps_the_longest_side_keeping_aspect(server, photo_png):
    image = decode(stylize(server, photo_png, max_side_px=150))
    assert image.size == (150, 100)


@pytest.mark.parametrize(
    "fmt,content_type,pil_format",
    [
        ("png", "image/png", "PNG"),
        ("jpeg", "image/jpeg", "JPEG"),
        ("webp", "image/webp", "WEBP"),
    ],
)
def test_output_formats(server, photo_jpeg, fmt, content_type, pil_format):
    response = stylize(server, photo_jpeg, format=fmt, quality=80, max_side_px=96)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == content_type
    assert decode(response).format == pil_format


def test_same_input_gives_the_same_bytes(server, photo_jpeg):
    first = stylize(server, photo_jpeg, style="udnie", max_side_px=128).content
    assert stylize(server, photo_jpeg, style="udnie", max_side_px=128).content == first


def test_json_body_with_base64_and_data_url(server, photo_jpeg):
    reference = stylize(server, photo_jpeg, style="mosaic", max_side_px=64).content
    encoded = base64.b64encode(photo_jpeg).decode()
    for image in (encoded, "data:image/jpeg;base64," + encoded):
        response = server.predict("fast_style", json={"image": image, "style": "mosaic", "max_side_px": 64})
        assert response.status_code == 200, response.text
        assert response.content == reference


def test_response_format_json_carries_metadata(server, photo_jpeg):
    response = stylize(server, photo_jpeg, style="candy", max_side_px=64, response_format="json")
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert (body["width"], body["height"]) == (64, 64)
    assert body["parameters"] == {"style": "candy", "max_side_px": 64}
    assert body["model_version"] == "1.0"
    assert Image.open(io.BytesIO(base64.b64decode(body["images"][0]))).size == (64, 64)


def test_raw_body_on_predictions_takes_defaults(server, photo_png):
    response = server.predict("fast_style", data=photo_png, headers={"Content-Type": "image/png"})
    assert response.status_code == 200, response.text
    assert decode(response).size == (451, 300)


def test_raw_body_on_invocations_takes_query_fields(server, photo_png):
    reference = stylize(server, photo_png, style="udnie", max_side_px=90, format="jpeg").content
    response = server.session.post(
        f"{server.url}/invocations",
        params={"model_name": "fast_style", "style": "udnie", "max_side_px": 90, "format": "jpeg"},
        data=photo_png,
        headers={"Content-Type": "image/png"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "image/jpeg"
    assert response.content == reference


def test_open_inference_protocol_json(server, photo_jpeg):
    reference = stylize(server, photo_jpeg, style="rain_princess", max_side_px=64).content
    request = {
        "id": "42",
        "inputs": [
            {"name": "image", "datatype": "BYTES", "shape": [1], "data": [base64.b64encode(photo_jpeg).decode()]},
            {"name": "style", "datatype": "BYTES", "shape": [1], "data": ["rain_princess"]},
            {"name": "max_side_px", "datatype": "INT64", "shape": [1], "data": [64]},
        ],
    }
    response = server.session.post(f"{server.url}/v2/models/fast_style/infer", json=request, timeout=60)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == "42" and body["model_name"] == "fast_style"
    outputs = {o["name"]: o for o in body["outputs"]}
    assert base64.b64decode(outputs["image"]["data"][0]) == reference
    assert json.loads(outputs["metadata"]["data"][0])["parameters"]["style"] == "rain_princess"


def test_open_inference_protocol_with_tritons_own_client(server, photo_jpeg):
    """Triton's HTTP client sends BYTES with the binary tensor data extension by default."""
    import tritonclient.http as triton

    reference = stylize(server, photo_jpeg, style="mosaic", max_side_px=64).content
    client = triton.InferenceServerClient(server.url.removeprefix("http://"))
    inputs = []
    for name, value, datatype in (
        ("image", np.array([photo_jpeg], dtype=np.object_), "BYTES"),
        ("style", np.array([b"mosaic"], dtype=np.object_), "BYTES"),
        ("max_side_px", np.array([64], dtype=np.int64), "INT64"),
    ):
        tensor = triton.InferInput(name, [1], datatype)
        tensor.set_data_from_numpy(value, binary_data=True)
        inputs.append(tensor)
    result = client.infer("fast_style", inputs, headers={"Authorization": f"Bearer {server.keys.inference}"})
    assert result.as_numpy("image")[0] == reference
    assert json.loads(result.as_numpy("metadata")[0])["width"] == 64


def test_open_inference_protocol_error_is_readable_by_triton_client(server):
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    client = triton.InferenceServerClient(server.url.removeprefix("http://"))
    tensor = triton.InferInput("style", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([b"cubism"], dtype=np.object_))
    with pytest.raises(InferenceServerException, match="style"):
        client.infer("fast_style", [tensor], headers={"Authorization": f"Bearer {server.keys.inference}"})


def test_grpc_predictions(server, grpc_stubs, grpc_channel, photo_jpeg):
    inference_pb2, inference_pb2_grpc = grpc_stubs
    reference = stylize(server, photo_jpeg, style="candy", max_side_px=80).content
    stub = inference_pb2_grpc.InferenceAPIsServiceStub(grpc_channel)
    answer = stub.Predictions(
        inference_pb2.PredictionsRequest(
            model_name="fast_style", input={"image": photo_jpeg, "style": b"candy", "max_side_px": b"80"}
        ),
        metadata=(("authorization", f"Bearer {server.keys.inference}"),),
        timeout=60,
    )
    assert answer.prediction == reference


def test_concurrent_mixed_burst_equals_answers_alone(server, photo_jpeg, photo_png):
    """Requests batched together (batchSize 8) must each get what they get alone."""
    cases = [(photo, style, side) for photo in (photo_jpeg, photo_png) for style in STYLES for side in (48, 64)]
    alone = [stylize(server, p, style=s, max_side_px=m).content for p, s, m in cases]

    def together(case):
        photo, style, side = case
        response = stylize(server, photo, style=style, max_side_px=side, response_format="json")
        assert response.status_code == 200, response.text
        return response.json()

    # Each case twice in a row: only requests of one style and size share a network batch.
    twice = [i for i in range(len(cases)) for _ in (0, 1)]
    for _ in range(5):  # until the burst really shared a worker batch (batch_size); never a timer
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda i: together(cases[i]), twice))
        assert [base64.b64decode(a["images"][0]) for a in answers] == [alone[i] for i in twice]
        if max(a["batch_size"] for a in answers) > 1:
            break
    else:
        pytest.fail("no two requests of the burst ran in one batch")


def test_a_bad_request_in_a_batch_does_not_fail_its_neighbours(server, photo_jpeg):
    good = stylize(server, photo_jpeg, style="candy", max_side_px=64).content

    def send(i):
        if i % 2:
            return stylize(server, b"not an image at all", style="candy")
        return stylize(server, photo_jpeg, style="candy", max_side_px=64)

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(send, range(8)))
    for i, response in enumerate(responses):
        if i % 2:
            assert_error(response, 400, "image")
        else:
            assert response.status_code == 200 and response.content == good


def _png(width, height) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "fields,files,status,field",
    [
        ({"style": "candy"}, {"image": ("x.jpg", b"this is not an image")}, 400, "image"),
        ({}, {"image": ("x.png", _png(40, 40)[:60])}, 400, "image"),
        ({"style": "cubism"}, {"image": ("x.png", _png(40, 40))}, 400, "style"),
        ({"max_side_px": "0"}, {"image": ("x.png", _png(40, 40))}, 400, "max_side_px"),
        ({"max_side_px": "99999"}, {"image": ("x.png", _png(40, 40))}, 400, "max_side_px"),
        ({"max_side_px": "big"}, {"image": ("x.png", _png(40, 40))}, 400, "max_side_px"),
        ({"format": "gif"}, {"image": ("x.png", _png(40, 40))}, 400, "format"),
        ({"styel": "candy"}, {"image": ("x.png", _png(40, 40))}, 400, "styel"),
        ({"style": "candy"}, None, 400, "image"),
        ({}, {"image": ("x.png", _png(9000, 2))}, 413, "image"),
    ],
)
def test_bad_inputs_get_4xx_naming_the_field_and_the_server_keeps_serving(
    server, photo_jpeg, fields, files, status, field
):
    response = server.predict("fast_style", data=fields, files=files)
    assert_error(response, status, field)
    assert stylize(server, photo_jpeg, max_side_px=32).status_code == 200


def test_bad_json_bodies(server):
    response = server.predict("fast_style", data=b"{nope", headers={"Content-Type": "application/json"})
    assert_error(response, 400, "body")
    response = server.predict("fast_style", json={"image": "@@@not-base64@@@"})
    assert_error(response, 400, "image")


def test_describe_lists_styles_limits_and_defaults(server):
    response = server.management("GET", "/models/fast_style?customized=true")
    assert response.status_code == 200
    described = response.json()[0]["customizedMetadata"]
    assert described["styles"] == sorted(STYLES)
    assert described["fields"]["max_side_px"] == {
        "type": "integer",
        "min": 16,
        "max": 2048,
        "default": 1024,
        "unit": "px",
        "description": ANY,
    }
    assert described["fields"]["style"]["default"] == "candy"
    weights = described["manifest"]["weights"]
    assert {w["path"] for w in weights} == {f"weights/{s}.safetensors" for s in STYLES}
    assert all(len(w["sha256"]) == 64 for w in weights)
