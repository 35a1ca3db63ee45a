"""gRPC fixtures of the integration tests; the server and photos live in tests/conftest.py."""

import pytest


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
    code = protoc.main(
        [
            "protoc",
            f"-I{protos / 'proto'}",
            f"-I{protos}",
            f"-I{Path(grpc_tools.__file__).parent / '_proto'}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            str(protos / "proto" / "inference.proto"),
            str(protos / "google" / "rpc" / "status.proto"),
        ]
    )
    assert code == 0, "protoc failed"
    sys.path.insert(0, str(out))
    return importlib.import_module("inference_pb2"), importlib.import_module("inference_pb2_grpc")


@pytest.fixture(scope="session")
def grpc_channel(server):
    import grpc

    channel = grpc.insecure_channel(f"127.0.0.1:{server.process.ports.grpc_inference}")
    yield channel
    channel.close()
