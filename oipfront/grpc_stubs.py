"""The gRPC stubs of protos/*.proto, compiled with grpcio-tools when the front starts (never
committed): into ~/.cache/imagelab/oip_stubs/<hash of the protos>/, reused while the protos
are unchanged.

The messages live in the `inference` package like Triton's, so this process must not also
load tritonclient.grpc (the two would clash in protobuf's default descriptor pool); the front
runs as its own process."""

import hashlib
import importlib
import os
import sys
from pathlib import Path
from types import SimpleNamespace

PROTO_DIR = Path(__file__).resolve().parent / "protos"
PROTOS = ("model_config.proto", "grpc_service.proto")
CACHE_DIR = Path(os.environ.get("IMAGELAB_CACHE", Path.home() / ".cache" / "imagelab")) / "oip_stubs"


def build_dir() -> Path:
    digest = hashlib.sha256(b"".join((PROTO_DIR / name).read_bytes() for name in PROTOS)).hexdigest()[:16]
    return CACHE_DIR / digest


def compile_protos(out: Path) -> None:
    from grpc_tools import protoc

    staging = out.with_name(out.name + f".tmp{os.getpid()}")
    staging.mkdir(parents=True, exist_ok=True)
    include = Path(protoc.__file__).parent / "_proto"
    args = ["protoc", f"-I{PROTO_DIR}", f"-I{include}", f"--python_out={staging}", f"--grpc_python_out={staging}"]
    if protoc.main([*args, *(str(PROTO_DIR / name) for name in PROTOS)]) != 0:
        raise RuntimeError(f"grpcio-tools could not compile {', '.join(PROTOS)} in {PROTO_DIR}")
    try:
        staging.rename(out)  # atomic: two fronts starting at once never see half a build
    except OSError:
        if not out.is_dir():
            raise


def load() -> SimpleNamespace:
    """-> namespace with service_pb2, service_pb2_grpc and model_config_pb2."""
    out = build_dir()
    if not (out / "grpc_service_pb2_grpc.py").is_file():
        compile_protos(out)
    if str(out) not in sys.path:
        sys.path.insert(0, str(out))  # the generated grpc_service_pb2 imports model_config_pb2 by name
    return SimpleNamespace(
        model_config_pb2=importlib.import_module("model_config_pb2"),
        service_pb2=importlib.import_module("grpc_service_pb2"),
        service_pb2_grpc=importlib.import_module("grpc_service_pb2_grpc"),
    )
