"""Session fixtures every test folder may use: a real TorchServe on free loopback ports,
started once with freshly built archives of the tiny offline weights (or real ones, where
weights/ has them), and real test photographs."""

import io
import os
from dataclasses import dataclass

import pytest
import requests
from PIL import Image

# No model hub here or in CI: any accidental hub access must fail fast.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from archiver.build import build_all, build_archive  # noqa: E402
from archiver.capabilities import CAPABILITIES  # noqa: E402
from operations.server import Keys, Ports, TorchServe, latest_archives  # noqa: E402
from weightstore.layout import WeightsLayout  # noqa: E402

SECOND_ANIMALS_VERSION = "1.1"  # served beside animals 1.0, which stays the default


@dataclass
class Server:
    process: TorchServe
    keys: Keys
    session: requests.Session

    @property
    def url(self) -> str:
        return self.process.inference_url

    @property
    def management_url(self) -> str:
        return self.process.management_url

    def predict(self, model: str, timeout_s: float = 120, **kwargs) -> requests.Response:
        return self.session.post(f"{self.url}/predictions/{model}", timeout=timeout_s, **kwargs)

    def management(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.keys.management}"}
        return requests.request(method, f"{self.management_url}{path}", headers=headers, timeout=60, **kwargs)


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Server:
    store = tmp_path_factory.mktemp("model_store")
    build_all(WeightsLayout.default(), store)
    # A second animals version beside the default 1.0 (the same weights): the playground's
    # version picker has one to choose (tests/frontend/test_e2e.py).
    models = latest_archives(store)
    second = build_archive(CAPABILITIES["animals"], WeightsLayout.default(), store, SECOND_ANIMALS_VERSION)
    models["animals"] = [models["animals"], second.name]
    process = TorchServe(tmp_path_factory.mktemp("torchserve"), store, models, Ports.free())
    process.start()
    try:
        process.wait_ready(timeout_s=300)
        keys = process.keys()
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {keys.inference}"
        yield Server(process, keys, session)
    finally:
        process.stop()


@pytest.fixture(scope="session")
def photo_jpeg() -> bytes:
    """A real photograph (scikit-image's astronaut), 512x512, as JPEG."""
    import skimage.data

    buffer = io.BytesIO()
    Image.fromarray(skimage.data.astronaut()).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def photo_png() -> bytes:
    """A second real photograph (scikit-image's chelsea, 451x300), as PNG."""
    import skimage.data

    buffer = io.BytesIO()
    Image.fromarray(skimage.data.chelsea()).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="session")
def texture_png() -> bytes:
    """A real texture (scikit-image's brick), as PNG."""
    import skimage.data

    buffer = io.BytesIO()
    Image.fromarray(skimage.data.brick()).convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()
