"""Secure defaults, hostile images through the real server, and the handlers' own metrics."""

import io
import struct
import zlib

import numpy as np
import pytest
import requests
from PIL import Image
from support import assert_error, decode

from weightstore.layout import REPO_ROOT


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height over a few bytes of data: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def _save(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def _exif_rotated_jpeg() -> bytes:
    image = Image.new("RGB", (40, 20), (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    return _save(image, "JPEG", exif=exif.tobytes())


def _animated_webp() -> bytes:
    frames = [Image.new("RGB", (24, 16), c) for c in ((255, 0, 0), (0, 0, 255))]
    return _save(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)


GOOD = {
    "1x1": (_save(Image.new("RGB", (1, 1), (9, 9, 9)), "PNG"), (1, 1)),
    "16-bit gray": (_save(Image.fromarray(np.full((12, 10), 65535, dtype=np.uint16)), "PNG"), (10, 12)),
    "cmyk jpeg": (_save(Image.new("CMYK", (16, 8), (0, 255, 0, 0)), "JPEG"), (16, 8)),
    "palette with transparency": (_save(Image.new("P", (8, 8), 0), "PNG", transparency=0), (8, 8)),
    "rgba": (_save(Image.new("RGBA", (9, 7), (0, 0, 0, 0)), "PNG"), (9, 7)),
    "1-bit": (_save(Image.new("1", (10, 10), 1), "PNG"), (10, 10)),
    "exif rotated": (_exif_rotated_jpeg(), (20, 40)),
    "animated webp": (_animated_webp(), (24, 16)),
}
BAD = {
    "bomb png header": (_png_header_only(60000, 60000), 413),
    "huge side": (_png_header_only(9000, 10), 413),
    "truncated png": (_save(Image.new("RGB", (64, 64), (1, 2, 3)), "PNG")[:80], 400),
    "wrong magic": (b"GIF89a" + b"\0" * 40, 400),
    "gif": (_save(Image.new("RGB", (4, 4)), "GIF"), 400),
    "bmp": (_save(Image.new("RGB", (4, 4)), "BMP"), 400),
}


@pytest.mark.parametrize("name", sorted(GOOD))
def test_odd_but_valid_images_are_served(server, name):
    data, size = GOOD[name]
    response = server.predict("fast_style", files={"image": ("x", data)})
    assert response.status_code == 200, response.text
    assert decode(response).size == size


@pytest.mark.parametrize("name", sorted(BAD))
def test_hostile_images_are_refused_and_the_server_keeps_serving(server, name):
    data, status = BAD[name]
    assert_error(server.predict("fast_style", files={"image": ("x", data)}), status, "image")
    assert server.predict("fast_style", files={"image": ("x", GOOD["1x1"][0])}).status_code == 200


def test_no_token_no_answer(server):
    assert requests.get(f"{server.url}/ping", timeout=10).status_code in (400, 401)
    assert requests.post(f"{server.url}/predictions/fast_style", timeout=10).status_code in (400, 401)
    assert server.session.get(f"{server.url}/ping", timeout=10).json()["status"] == "Healthy"


def test_model_registration_is_closed(server):
    response = server.management("POST", "/models?url=fast_style-1.0.mar")
    assert response.status_code == 405


def test_config_is_secure_by_default():
    config = dict(
        line.split("=", 1)
        for line in (REPO_ROOT / "config.properties").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    for key in ("inference_address", "management_address", "metrics_address"):
        assert config[key].startswith("http://127.0.0.1:")
    assert config["grpc_inference_address"] == "127.0.0.1" and config["enable_model_api"] == "false"
    assert "disable_token_authorization" not in config
    assert int(config["job_queue_size"]) <= 1000 and int(config["max_request_size"]) <= 128 * 2**20


def test_handlers_metrics_on_the_prometheus_port(server):
    server.predict("fast_style", files={"image": ("x", GOOD["1x1"][0])})
    server.predict("fast_style", files={"image": ("x", b"junk")}, data={"style": "candy"})
    port = server.process.ports.metrics
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    if "Token Authorization failed" in text:
        text = requests.get(
            f"http://127.0.0.1:{port}/metrics", timeout=10, headers={"Authorization": f"Bearer {server.keys.inference}"}
        ).text
    produced = [line for line in text.splitlines() if line.startswith("ImagelabImagesProduced{")]
    assert produced and any('model_name="fast_style"' in line or "fast_style" in line for line in produced), text[:2000]
    rejected = [line for line in text.splitlines() if line.startswith("ImagelabRejectedRequests{")]
    assert any('Field="image"' in line for line in rejected), rejected
