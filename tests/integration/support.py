"""Assertions and decoders the integration tests share."""

import io

import requests
from PIL import Image


def decode(response: requests.Response) -> Image.Image:
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image


def assert_error(response: requests.Response, status: int, field: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["code"] == status
    assert field in body["message"], body
    assert body.get("field") == field
    return body
