"""txt2img end to end on the tiny SD 1.5: styles, seeds, batching, streaming, validation."""

import base64
import io
import json
from concurrent.futures import ThreadPoolExecutor
from unittest.mock import ANY

import pytest
from PIL import Image
from support import assert_error, decode

FAST = {"steps": 2, "width": 64, "height": 64}


def generate(server, **fields):
    return server.predict("txt2img", json={**FAST, **fields}, timeout_s=300)


def test_one_image_with_seed_reported(server):
    response = generate(server, prompt="a lighthouse at dusk", seed=5, response_format="json")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["seeds"] == [5] and (body["width"], body["height"]) == (64, 64)
    assert body["parameters"]["style"] == "none" and body["parameters"]["steps"] == 2
    image = Image.open(io.BytesIO(base64.b64decode(body["images"][0])))
    assert image.size == (64, 64)


# The golden pixels of the tiny model: tests/handlers/services/test_golden_pixels.py (built from
# a tiny model of its own; this server reads weights/, where real weights change the image).


def test_random_seed_is_reported_and_reproduces(server):
    body = generate(server, prompt="a teapot", response_format="json").json()
    seed = body["seeds"][0]
    again = generate(server, prompt="a teapot", seed=seed)
    assert base64.b64decode(body["images"][0]) == again.content


def test_styles_change_the_image_and_scale_zero_is_none(server):
    base = generate(server, prompt="a harbour", seed=3).content
    monet = generate(server, prompt="a harbour", seed=3, style="monet").content
    van_gogh = generate(server, prompt="a harbour", seed=3, style="van_gogh").content
    zero = generate(server, prompt="a harbour", seed=3, style="monet", style_scale=0).content
    assert len({base, monet, van_gogh}) == 3
    assert zero == base


def test_num_images_returns_json_with_consecutive_seeds(server):
    body = generate(server, prompt="a cat", seed=10, num_images=3).json()
    assert body["seeds"] == [10, 11, 12] and len(body["images"]) == 3
    single = generate(server, prompt="a cat", seed=11).content
    assert base64.b64decode(body["images"][1]) == single


def test_same_seed_same_image_alone_and_in_a_mixed_batch(server):
    requests = [
        {"prompt": "a red car", "seed": 1},
        {"prompt": "a blue boat", "seed": 2, "style": "monet"},
        {"prompt": "a green tree", "seed": 3},
        {"prompt": "a yellow house", "seed": 4, "negative_prompt": "blurry"},
    ]
    alone = [generate(server, **r).content for r in requests]
    for _ in range(5):  # until the burst really shared a pipeline call; never a timer
        with ThreadPoolExecutor(len(requests)) as pool:
            together = list(pool.map(lambda r: generate(server, response_format="json", **r).json(), requests))
        assert [base64.b64decode(t["images"][0]) for t in together] == alone
        if max(t["batch_images"] for t in together) > 1:
            break
    else:
        pytest.fail("no two requests of the burst ran in one pipeline call")


def test_lcm_fast_mode(server):
    response = generate(server, prompt="a fox", seed=9, scheduler="lcm", steps=4, guidance=1.0, style="van_gogh")
    assert response.status_code == 200, response.text
    assert decode(response).size == (64, 64)


def test_streaming_one_event_per_step_then_the_result(server):
    with server.session.post(
        f"{server.url}/predictions/txt2img",
        json={**FAST, "steps": 3, "prompt": "a bridge", "seed": 2, "stream": True},
        stream=True,
        timeout=300,
    ) as response:
        assert response.status_code == 200
        events = [json.loads(line) for line in response.iter_lines() if line]
    assert [(e["step"], e["of"]) for e in events[:-1]] == [(1, 3), (2, 3), (3, 3)]
    assert events[-1]["type"] == "result" and events[-1]["seeds"] == [2]


def test_multipart_and_v2_give_the_json_answer(server):
    reference = generate(server, prompt="a mountain", seed=8).content
    multipart = server.predict(
        "txt2img",
        files={"prompt": (None, "a mountain")},
        data={"seed": "8", "steps": "2", "width": "64", "height": "64"},
    )
    assert multipart.content == reference
    v2 = {
        "inputs": [
            {"name": "prompt", "datatype": "BYTES", "shape": [1], "data": ["a mountain"]},
            {"name": "seed", "datatype": "INT64", "shape": [1], "data": [8]},
            {"name": "steps", "datatype": "INT64", "shape": [1], "data": [2]},
            {"name": "width", "datatype": "INT64", "shape": [1], "data": [64]},
            {"name": "height", "datatype": "INT64", "shape": [1], "data": [64]},
        ]
    }
    response = server.session.post(f"{server.url}/v2/models/txt2img/infer", json=v2, timeout=300)
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    assert base64.b64decode(outputs["image"]["data"][0]) == reference


@pytest.mark.parametrize(
    "fields,status,field",
    [
        ({}, 400, "prompt"),
        ({"prompt": "   "}, 400, "prompt"),
        ({"prompt": "x", "steps": 0}, 400, "steps"),
        ({"prompt": "x", "steps": 101}, 400, "steps"),
        ({"prompt": "x", "guidance": 0.5}, 400, "guidance"),
        ({"prompt": "x", "guidance": 21}, 400, "guidance"),
        ({"prompt": "x", "width": 100}, 400, "width"),
        ({"prompt": "x", "height": 4096}, 400, "height"),
        ({"prompt": "x", "num_images": 5}, 400, "num_images"),
        ({"prompt": "x", "style": "picasso"}, 400, "style"),
        ({"prompt": "x", "style_scale": 2.5}, 400, "style_scale"),
        ({"prompt": "x", "scheduler": "heun"}, 400, "scheduler"),
        ({"prompt": "x", "seed": -1}, 400, "seed"),
        ({"prompt": "x", "seed": "abc"}, 400, "seed"),
        ({"prompt": "x", "steps": "NaN"}, 400, "steps"),
        ({"prompt": " ".join(["cat"] * 80)}, 422, "prompt"),
        ({"prompt": "x", "negative_prompt": " ".join(["dog"] * 90)}, 422, "negative_prompt"),
    ],
)
def test_validation_errors(server, fields, status, field):
    body = assert_error(server.predict("txt2img", json={**FAST, **fields}), status, field)
    if status == 422:
        assert "tokens" in body["message"] and "77" in body["message"]


def test_a_too_long_prompt_in_a_batch_fails_alone(server):
    good = generate(server, prompt="a lamp", seed=4).content

    def send(i):
        prompt = " ".join(["cat"] * 80) if i % 2 else "a lamp"
        return generate(server, prompt=prompt, seed=4)

    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(send, range(4)))
    assert [r.status_code for r in responses] == [200, 422, 200, 422]
    assert responses[0].content == good and responses[2].content == good


def test_describe(server):
    described = server.management("GET", "/models/txt2img?customized=true").json()[0]["customizedMetadata"]
    assert described["styles"][:3] == ["none", "monet", "van_gogh"]
    steps = described["fields"]["steps"]
    by_scheduler = steps.pop("by_scheduler")  # the ranges the playground offers per scheduler
    assert steps == {"type": "integer", "min": 1, "max": 100, "default": 25, "description": ANY}
    assert by_scheduler["lcm"] == {"min": 2, "max": 8, "default": 4}
    assert by_scheduler["dpmpp"] == {"min": 20, "max": 100, "default": 25}
    assert described["fields"]["guidance"]["min"] == 1 and described["fields"]["guidance"]["max"] == 20
    assert "lcm" in described["fields"]["scheduler"]["choices"]
    assert described["max_prompt_tokens"] == 77
