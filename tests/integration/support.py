"""Assertions, decoders and servers of their own that the integration tests share."""

import contextlib
import io
from dataclasses import replace

import requests
import yaml
from PIL import Image

from archiver.build import build_archive
from archiver.capabilities import CAPABILITIES
from operations.server import Ports, TorchServe
from weightstore.layout import WeightsLayout


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


@contextlib.contextmanager
def own_server(tmp_path_factory, model: str, config: dict, overrides=None, layout=None, version="1.0"):
    """A TorchServe of its own serving `model` built with this model-config (a full one, e.g.
    the archive's YAML with test changes) from `layout`'s weights (default: weights/) as
    `version` -> (server, session with the inference token)."""
    config_path = tmp_path_factory.mktemp("config") / f"{model}.yaml"
    config_path.write_text(yaml.safe_dump(config))
    store = tmp_path_factory.mktemp(f"{model}_store")
    layout = layout or WeightsLayout.default()
    archive = build_archive(replace(CAPABILITIES[model], config=config_path), layout, store, version)
    server = TorchServe(
        tmp_path_factory.mktemp(f"{model}_ts"), store, {model: archive.name}, Ports.free(), overrides=overrides
    )
    server.start()
    try:
        server.wait_ready()
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {server.keys().inference}"
        yield server, session
    finally:
        server.stop()


def model_config(model: str) -> dict:
    """The archive's model-config.yaml as a dict, for a test to change before `own_server`."""
    return yaml.safe_load(CAPABILITIES[model].config.read_text())
