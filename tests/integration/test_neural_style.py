"""neural_style end to end: two images in every encoding, progress streaming, time budget."""

import base64
import json
from unittest.mock import ANY

import pytest
from support import assert_error, decode, model_config

from imagelab.neural_style.speed import default_steps
from weightstore.layout import WeightsLayout

QUICK = {"steps": "6", "max_side_px": "64", "seed": "7"}


def transfer(server, content, style, **fields):
    files = {"content": ("photo.jpg", content), "style_image": ("texture.png", style)}
    return server.predict("neural_style", files=files, data={**QUICK, **fields}, timeout_s=300)


def test_multipart_two_images_json_metadata(server, photo_jpeg, texture_png):
    response = transfer(server, photo_jpeg, texture_png, response_format="json")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["width"], body["height"]) == (64, 64)
    assert body["seeds"] == [7] and body["steps_done"] == 6 and body["truncated"] is False
    assert body["style_loss"] > 0 and body["content_loss"] >= 0
    assert body["parameters"]["optimizer"] == "lbfgs"


def test_same_seed_same_image_and_aspect_kept(server, photo_png, texture_png):
    first = transfer(server, photo_png, texture_png, init="noise")
    second = transfer(server, photo_png, texture_png, init="noise")
    assert first.status_code == 200 and first.content == second.content
    assert decode(first).size == (64, 43)  # chelsea is 451x300
    other = transfer(server, photo_png, texture_png, init="noise", seed="8")
    assert other.content != first.content


def test_json_base64_gives_the_multipart_answer(server, photo_jpeg, texture_png):
    reference = transfer(server, photo_jpeg, texture_png).content
    body = {
        "content": base64.b64encode(photo_jpeg).decode(),
        "style_image": "data:image/png;base64," + base64.b64encode(texture_png).decode(),
        "steps": 6,
        "max_side_px": 64,
        "seed": 7,
    }
    response = server.predict("neural_style", json=body, timeout_s=300)
    assert response.status_code == 200, response.text
    assert response.content == reference


def test_time_budget_returns_the_best_image_truncated(server, photo_jpeg, texture_png):
    response = transfer(server, photo_jpeg, texture_png, steps="1000", time_budget_s="0.5", response_format="json")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["truncated"] is True and 1 <= body["steps_done"] < 1000
    assert len(body["images"]) == 1


def test_streaming_over_chunked_http(server, photo_jpeg, texture_png):
    files = {"content": ("c.jpg", photo_jpeg), "style_image": ("s.png", texture_png)}
    with server.session.post(
        f"{server.url}/predictions/neural_style",
        files=files,
        data={**QUICK, "stream": "true"},
        stream=True,
        timeout=300,
    ) as response:
        assert response.status_code == 200
        events = [json.loads(line) for line in response.iter_lines() if line]
    progress = [e for e in events if e["type"] == "progress"]
    assert [e["step"] for e in progress] == list(range(1, 7))
    assert all(e["of"] == 6 and "style_loss" in e and "content_loss" in e for e in progress)
    assert events[-1]["type"] == "result" and events[-1]["steps_done"] == 6
    assert len(events) == len(progress) + 1


def test_streaming_over_grpc(server, grpc_stubs, grpc_channel, photo_jpeg, texture_png):
    inference_pb2, inference_pb2_grpc = grpc_stubs
    stub = inference_pb2_grpc.InferenceAPIsServiceStub(grpc_channel)
    request = inference_pb2.PredictionsRequest(
        model_name="neural_style",
        input={
            "content": photo_jpeg,
            "style_image": texture_png,
            "steps": b"4",
            "max_side_px": b"64",
            "seed": b"1",
            "stream": b"true",
        },
    )
    metadata = (("authorization", f"Bearer {server.keys.inference}"),)
    events = [json.loads(m.prediction) for m in stub.StreamPredictions(request, metadata=metadata, timeout=300)]
    assert [e["step"] for e in events[:-1]] == [1, 2, 3, 4]
    assert events[-1]["type"] == "result"
    assert base64.b64decode(events[-1]["images"][0])[:4] == b"\x89PNG"


def test_open_inference_protocol(server, photo_jpeg, texture_png):
    reference = transfer(server, photo_jpeg, texture_png).content
    request = {
        "inputs": [
            {"name": "content", "datatype": "BYTES", "shape": [1], "data": [base64.b64encode(photo_jpeg).decode()]},
            {
                "name": "style_image",
                "datatype": "BYTES",
                "shape": [1],
                "data": [base64.b64encode(texture_png).decode()],
            },
            {"name": "steps", "datatype": "INT64", "shape": [1], "data": [6]},
            {"name": "max_side_px", "datatype": "INT64", "shape": [1], "data": [64]},
            {"name": "seed", "datatype": "INT64", "shape": [1], "data": [7]},
        ]
    }
    response = server.session.post(f"{server.url}/v2/models/neural_style/infer", json=request, timeout=300)
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    assert base64.b64decode(outputs["image"]["data"][0]) == reference


@pytest.mark.parametrize(
    "fields,files,status,field",
    [
        ({}, {"style_image": ("s.png", b"PNG?")}, 400, "content"),
        ({}, {"content": ("c.jpg", b"\xff\xd8\xff\xe0 truncated")}, 400, "content"),
        ({"steps": "0"}, None, 400, "steps"),
        ({"steps": "1001"}, None, 400, "steps"),
        ({"max_side_px": "2048"}, None, 400, "max_side_px"),
        ({"init": "gaussian"}, None, 400, "init"),
        ({"optimizer": "sgd"}, None, 400, "optimizer"),
        ({"content_weight": "0", "style_weight": "0"}, None, 400, "content_weight"),
        ({"style_weight": "nan"}, None, 400, "style_weight"),
        ({"time_budget_s": "100000"}, None, 400, "time_budget_s"),
    ],
)
def test_bad_inputs(server, photo_jpeg, texture_png, fields, files, status, field):
    files = files or {"content": ("c.jpg", photo_jpeg), "style_image": ("s.png", texture_png)}
    response = server.predict("neural_style", files=files, data=fields)
    assert_error(response, status, field)


def test_raw_body_is_refused_with_a_pointer_to_multipart(server, photo_jpeg, texture_png):
    response = server.predict("neural_style", data=photo_jpeg, headers={"Content-Type": "image/jpeg"})
    assert_error(response, 400, "body")
    assert transfer(server, photo_jpeg, texture_png).status_code == 200


def test_describe(server):
    described = server.management("GET", "/models/neural_style?customized=true").json()[0]["customizedMetadata"]
    assert described["fields"]["steps"] == {
        "type": "integer",
        "min": 1,
        "max": 1000,
        "default": ANY,
        "description": ANY,
    }
    # The default is the rule's, not a constant: the most steps (up to the archive's
    # default_steps) that fit the budget at the default size at this worker's measured speed.
    speed, fields = described["speed"], described["fields"]
    default_side_px, budget_s = fields["max_side_px"]["default"], fields["time_budget_s"]["default"]
    ceiling = model_config("neural_style")["handler"]["default_steps"]
    assert fields["steps"]["default"] == speed["default_steps"][str(default_side_px)]
    seconds_per_step = speed["seconds_per_megapixel_step"] * default_side_px**2 / 1e6
    # describe rounds the rate to 6 digits: the rule at the rate either side of the rounding
    bounds = {default_steps(seconds_per_step * (1 + d), budget_s, ceiling) for d in (-1e-3, 1e-3)}
    assert min(bounds) <= fields["steps"]["default"] <= max(bounds)
    assert speed["steps_per_s"][str(default_side_px)] > 0
    assert described["fields"]["max_side_px"]["min"] == 64
    assert described["fields"]["optimizer"]["choices"] == ["lbfgs", "adam"]
    assert described["synthetic_weights"] is (WeightsLayout.default().first_real_in("vgg19") is None)


def _worker_pid(server, model):
    return server.management("GET", f"/models/{model}").json()[0]["workers"][0]["pid"]


@pytest.mark.parametrize(
    "model,fields",
    [
        ("neural_style", {"steps": b"0", "stream": b"true"}),  # fails at decode, before any chunk
        ("fast_style", {"style": b"candy"}),  # a model that never streams, called with StreamPredictions
    ],
)
def test_grpc_stream_without_progress_answers_and_keeps_the_worker(
    server, grpc_stubs, grpc_channel, model, fields, photo_jpeg
):
    """Regression: a final answer with no chunk before it crashed TorchServe's gRPC streaming path
    and restarted the worker."""
    inference_pb2, inference_pb2_grpc = grpc_stubs
    stub = inference_pb2_grpc.InferenceAPIsServiceStub(grpc_channel)
    pid = _worker_pid(server, model)
    image_field = "content" if model == "neural_style" else "image"
    request = inference_pb2.PredictionsRequest(model_name=model, input={image_field: photo_jpeg, **fields})
    metadata = (("authorization", f"Bearer {server.keys.inference}"),)
    messages = [m.prediction for m in stub.StreamPredictions(request, metadata=metadata, timeout=120)]
    assert len(messages) == 1
    if model == "neural_style":
        assert json.loads(messages[0])["field"] == "steps"
    else:
        assert messages[0][:4] == b"\x89PNG"
    assert _worker_pid(server, model) == pid
