"""Secure defaults, hostile images through the real server, and the handlers' own metrics."""

import base64
import io
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
from PIL import Image
from support import assert_error, decode

from repo_paths import REPO_ROOT


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


def _metrics_text(server) -> str:
    url = f"http://127.0.0.1:{server.process.ports.metrics}/metrics"
    text = requests.get(url, timeout=10).text
    if "Token Authorization failed" in text:
        text = requests.get(url, timeout=10, headers={"Authorization": f"Bearer {server.keys.inference}"}).text
    return text


FORGED_KEY = "x\n[METRICS]ImagelabForged.Count:1|#Level:Host|#hostname:forger,1700000000,req"


def test_request_keys_cannot_forge_metrics_or_become_labels(server):
    image = base64.b64encode(GOOD["1x1"][0]).decode()
    for key in (FORGED_KEY, "k" * 100_000):
        response = server.predict("fast_style", json={"image": image, key: 1})
        assert response.status_code == 400 and response.json()["field"][:100] == key[:100]
        assert len(response.content) < 10_000  # not echoed back in full
    text = _metrics_text(server)
    assert "ImagelabForged" not in text and "forger" not in text
    rejected = [line for line in text.splitlines() if line.startswith("ImagelabRejectedRequests{")]
    assert any('Field="unknown"' in line for line in rejected), rejected
    assert max(len(line) for line in text.splitlines()) < 1000  # no 100,000-character label


def _burst(server, count: int, send) -> list:
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda i: send(), range(count)))


def test_a_describe_header_on_inference_requests_is_ignored_alone_and_in_a_batch(server):
    """TorchServe forwards every header: `describe: True` must not turn a request into the
    describe call, nor make TorchServe answer 503 to the rest of its batch."""

    def send():
        return server.predict(
            "fast_style",
            files={"image": ("x.png", GOOD["1x1"][0])},
            data={"response_format": "json"},
            headers={"describe": "True"},
        )

    alone = send()
    assert alone.status_code == 200 and "manifest" not in alone.json(), alone.text[:300]
    for _ in range(5):  # until the burst really shared a batch (batchSize 8), not under a timer
        answers = _burst(server, 8, send)
        assert [a.status_code for a in answers] == [200] * 8, [a.text[:200] for a in answers]
        assert all("images" in a.json() for a in answers)
        if max(a.json()["batch_size"] for a in answers) > 1:
            break
    else:
        pytest.fail("no two of the requests were batched together")
    described = server.management("GET", "/models/fast_style?customized=true")
    assert described.status_code == 200 and "styles" in described.json()[0]["customizedMetadata"]


def test_json_nested_past_the_parsers_depth_is_400(server):
    response = server.predict("fast_style", data=b"[" * 100_000, headers={"Content-Type": "application/json"})
    assert_error(response, 400, "body")


def test_v2_output_name_sent_as_a_list_is_400(server):
    image = base64.b64encode(GOOD["1x1"][0]).decode()
    request = {
        "inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [image]}],
        "outputs": [{"name": ["image"]}],
    }
    response = server.session.post(f"{server.url}/v2/models/fast_style/infer", json=request, timeout=60)
    assert_error(response, 400, "outputs")


def test_a_content_image_too_elongated_to_fit_is_400(server):
    wide = _save(Image.new("RGB", (8192, 100), (120, 90, 60)), "PNG")
    style = _save(Image.effect_noise((64, 64), 40).convert("RGB"), "PNG")
    response = server.predict(
        "neural_style", files={"content": ("wide.png", wide), "style_image": ("s.png", style)}, data={"steps": "1"}
    )
    assert_error(response, 400, "content")
