"""A real TorchServe on free loopback ports, started once per test session with freshly built
archives of the tiny offline weights (or real ones, where weights/ has them)."""

import io
from dataclasses import dataclass

import pytest
import requests
from PIL import Image

from archiver.build import build_all
from archiver.layout import WeightsLayout
from archiver.server import Keys, Ports, TorchServe, latest_archives


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
    process = TorchServe(tmp_path_factory.mktemp("torchserve"), store, latest_archives(store), Ports.free())
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
def grpc_stubs(tmp_path_factory):
    """Python stubs for TorchServe's inference.proto, generated from the protos that ship
    inside the installed TorchServe jar (never committed)."""
    import importlib
    import sys
    import zipfile
    from pathlib import Path

    import grpc_tools
    import ts
    from grpc_tools import protoc

    out = tmp_path_factory.mktemp("grpc_stubs")
    jar = Path(ts.__file__).parent / "frontend" / "model-server.jar"
    with zipfile.ZipFile(jar) as bundle:
        for name in ("proto/inference.proto", "proto/management.proto", "google/rpc/status.proto"):
            bundle.extract(name, out / "protos")
    protos = out / "protos"
    code = protoc.main([
        "protoc", f"-I{protos / 'proto'}", f"-I{protos}", f"-I{Path(grpc_tools.__file__).parent / '_proto'}", f"--python_out={out}", f"--grpc_python_out={out}",
        str(protos / "proto" / "inference.proto"), str(protos / "google" / "rpc" / "status.proto"),
    ])
    assert code == 0, "protoc failed"
    sys.path.insert(0, str(out))
    return importlib.import_module("inference_pb2"), importlib.import_module("inference_pb2_grpc")


@pytest.fixture(scope="session")
def grpc_channel(server):
    import grpc

    channel = grpc.insecure_channel(f"127.0.0.1:{server.process.ports.grpc_inference}")
    yield channel
    channel.close()


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
