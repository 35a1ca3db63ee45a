"""Live previews (`preview: true`) through a real TorchServe: NDJSON over chunked HTTP, gRPC
StreamPredictions through the client SDK, and the CLI's `--preview` file. A TorchServe of its
own serving txt2img alone (one worker starts in time on a loaded machine); animals shares the
code path (tests/handlers/services/test_previews_service.py)."""

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from PIL import Image
from support import model_config, own_server

CLIENT_DIR = Path(__file__).resolve().parents[2] / "client"
sys.path.insert(0, str(CLIENT_DIR))

from imagelab_client import ImageLabClient  # noqa: E402

FAST = {"steps": 4, "width": 64, "height": 64, "seed": 3}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with own_server(tmp_path_factory, "txt2img", model_config("txt2img")) as pair:
        yield pair


def preview_image(preview: dict) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(preview["image"], validate=True)))
    image.load()
    assert image.format == "JPEG" and preview["format"] == "jpeg"
    assert image.size == (preview["width"], preview["height"]) and max(image.size) <= 128
    return image


def stream_events(served, fields: dict) -> list:
    server, session = served
    with session.post(
        f"{server.inference_url}/predictions/txt2img", json={**fields, "stream": True}, stream=True, timeout=300
    ) as response:
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"].startswith("application/x-ndjson")
        return [json.loads(line) for line in response.iter_lines() if line]


def test_ndjson_progress_carries_previews_only_when_asked(served):
    events = stream_events(served, {**FAST, "prompt": "a harbour", "preview": True})
    progress, result = events[:-1], events[-1]
    assert result["type"] == "result" and result["seeds"] == [3]
    assert [e["step"] for e in progress] == [1, 2, 3, 4]
    assert all(preview_image(e["preview"]).size == (64, 64) for e in progress)  # every step of 4 (preview.py)
    assert "preview" not in result["parameters"]

    plain = stream_events(served, {**FAST, "prompt": "a harbour"})
    assert not any("preview" in e for e in plain)
    # The preview is watched, not applied: the image is the same with or without it.
    assert plain[-1]["images"] == result["images"]


def test_the_field_in_describe(served):
    server, _ = served
    headers = {"Authorization": f"Bearer {server.keys().management}"}
    response = requests.get(f"{server.management_url}/models/txt2img?customized=true", headers=headers, timeout=60)
    described = response.json()[0]["customizedMetadata"]
    described = json.loads(described) if isinstance(described, str) else described
    assert described["fields"]["preview"]["type"] == "boolean"
    assert described["fields"]["preview"]["default"] is False


def test_grpc_stream_predictions_carry_previews(served):
    server, _ = served
    ports = server.ports
    key_file = server.workdir / "key_file.json"
    events = []
    with ImageLabClient(
        f"127.0.0.1:{ports.grpc_inference}",
        transport="grpc",
        management_url=f"127.0.0.1:{ports.grpc_management}",
        key_file=key_file,
    ) as client:
        result = client.generate("a harbour", extra={"preview": True}, on_progress=events.append, **FAST)
    assert result.seeds == [3]
    assert [e["step"] for e in events] == [1, 2, 3, 4]
    assert all(preview_image(e["preview"]).size == (64, 64) for e in events)


def test_cli_saves_the_latest_preview_beside_the_output(served, tmp_path):
    server, _ = served
    env = {
        **os.environ,
        "PYTHONPATH": str(CLIENT_DIR),
        "IMAGELAB_KEY_FILE": str(server.workdir / "key_file.json"),
    }
    output = tmp_path / "harbour.png"
    command = [
        sys.executable,
        "-m",
        "imagelab_client",
        "--url",
        server.inference_url,
        "--management-url",
        server.management_url,
    ]
    done = subprocess.run(
        [*command, "generate", "a harbour", "--steps", "4", "--width", "64", "--height", "64", "--seed", "3"]
        + ["--preview", "-o", str(output)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    preview = tmp_path / "harbour.preview.jpg"
    assert f"wrote {preview} (the last of 4 previews)" in done.stdout
    with Image.open(preview) as image:
        assert image.format == "JPEG" and image.size == (64, 64)
    assert output.is_file() and not list(tmp_path.glob("*.part"))
