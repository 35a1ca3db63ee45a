"""loadtests/checks.py: what the load test counts as a correct answer."""

import base64
import io
import json

from PIL import Image

from loadtests.checks import answer_problem


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


PICTURE = Image.new("RGB", (40, 30), (120, 60, 200))
BLACK = Image.new("RGB", (40, 30), (0, 0, 0))


def test_a_correct_image_passes():
    assert answer_problem(200, "image/png", encode(PICTURE), (40, 30), "image/png") is None
    assert answer_problem(200, "image/jpeg", encode(PICTURE, "JPEG"), (40, 30), "image/jpeg") is None


def test_wrong_status_type_size_or_format_fail():
    body = encode(PICTURE)
    assert answer_problem(503, "application/json", b'{"code": 503}', (40, 30), "image/png").startswith("HTTP 503")
    assert answer_problem(0, "", b"", (40, 30), "image/png").startswith("no answer")
    assert "content type" in answer_problem(200, "application/json", body, (40, 30), "image/png")
    assert "expected 64x64" in answer_problem(200, "image/png", body, (64, 64), "image/png")
    assert "format PNG" in answer_problem(200, "image/jpeg", body, (40, 30), "image/jpeg")
    assert "undecodable" in answer_problem(200, "image/png", b"not an image", (40, 30), "image/png")


def test_a_black_image_fails():
    assert answer_problem(200, "image/png", encode(BLACK), (40, 30), "image/png") == "image is black"


def json_answer(images, **extra) -> bytes:
    return json.dumps({"images": [base64.b64encode(encode(im)).decode() for im in images], **extra}).encode()


def test_json_answers_are_decoded_and_nsfw_flags_fail():
    assert (
        answer_problem(200, "application/json", json_answer([PICTURE], nsfw=[False]), (40, 30), "application/json")
        is None
    )
    assert (
        answer_problem(200, "application/json", json_answer([PICTURE], nsfw=[True]), (40, 30), "application/json")
        == "nsfw flag set"
    )
    assert (
        answer_problem(200, "application/json", json_answer([BLACK]), (40, 30), "application/json") == "image is black"
    )
    assert "malformed" in answer_problem(200, "application/json", b'{"images": ["***"]}', (40, 30), "application/json")
    assert (
        answer_problem(200, "application/json", json_answer([]), (40, 30), "application/json")
        == "JSON answer has no images"
    )
