"""Python stubs for TorchServe's gRPC API, generated on first use and cached (never committed).

TorchServe 0.12 ships its `inference.proto` and `management.proto` inside the frontend jar
(`ts/frontend/model-server.jar`, entries `proto/*.proto`). The stubs are compiled from, in order:

1. the `proto_dir` argument, or
2. the `IMAGELAB_PROTO_DIR` environment variable: a folder holding `inference.proto` and
   `management.proto` (directly or under `proto/`), or a TorchServe jar file, or
3. the jar of a TorchServe installed in this Python environment (found without importing it),
   or loose `.proto` files next to it.

Generated modules go to `IMAGELAB_CACHE_DIR` (default `~/.cache/imagelab-client`), in a folder
keyed by the protos' content and the grpcio-tools version, so a new TorchServe or grpcio-tools
recompiles once. Compiling needs `grpcio-tools` (the `[grpc]` extra); using the stubs needs only
`grpcio` and `protobuf`. Build-time generation: `python -m imagelab_client.grpc_stubs [out_dir]`.
"""

import hashlib
import importlib
import importlib.util
import os
import re
import shutil
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Optional

PROTO_DIR_ENV = "IMAGELAB_PROTO_DIR"
CACHE_DIR_ENV = "IMAGELAB_CACHE_DIR"
PROTOS = ("inference.proto", "management.proto")
STATUS_PROTO = "google/rpc/status.proto"
# google.rpc.Status as googleapis publishes it; used when no copy ships with the protos.
_STATUS_PROTO_TEXT = """syntax = "proto3";
package google.rpc;
import "google/protobuf/any.proto";
option java_multiple_files = true;
option java_outer_classname = "StatusProto";
option java_package = "com.google.rpc";
option objc_class_prefix = "RPC";
message Status {
  int32 code = 1;
  string message = 2;
  repeated google.protobuf.Any details = 3;
}
"""


class StubsUnavailable(RuntimeError):
    """No protos were found or grpcio-tools is missing; the message says how to fix it."""


@dataclass(frozen=True)
class Stubs:
    inference_pb2: ModuleType
    inference_pb2_grpc: ModuleType
    management_pb2: ModuleType
    management_pb2_grpc: ModuleType


_loaded: Optional[Stubs] = None


def load_stubs(proto_dir: Optional[Path] = None, cache_dir: Optional[Path] = None) -> Stubs:
    """The four generated modules, compiling them into the cache on first use."""
    global _loaded
    if _loaded is not None and proto_dir is None:
        return _loaded
    sources = read_protos(proto_dir)
    key = hashlib.sha256(b"".join(sources[name] for name in sorted(sources)))
    key.update(_tools_version().encode())
    out = Path(cache_dir or os.environ.get(CACHE_DIR_ENV) or Path.home() / ".cache" / "imagelab-client")
    folder = out / f"torchserve-grpc-{key.hexdigest()[:16]}"
    if not (folder / "management_pb2_grpc.py").exists():
        generate(sources, folder)
    _loaded = _import(folder)
    return _loaded


def read_protos(proto_dir: Optional[Path] = None) -> dict:
    """{relative proto path: bytes} for inference.proto, management.proto, google/rpc/status."""
    location = proto_dir or os.environ.get(PROTO_DIR_ENV)
    candidates = [Path(location)] if location else _installed_torchserve()
    for candidate in candidates:
        found = _read_jar(candidate) if candidate.is_file() else _read_folder(candidate)
        if found:
            found.setdefault(STATUS_PROTO, _STATUS_PROTO_TEXT.encode())
            return found
    where = location or "an installed TorchServe (ts/frontend/model-server.jar)"
    raise StubsUnavailable(
        f"no inference.proto/management.proto found in {where}; set {PROTO_DIR_ENV} to a folder "
        "with TorchServe's protos (serve/frontend/server/src/main/resources/proto) or its jar"
    )


def generate(sources: dict, folder: Path) -> Path:
    """Compile the protos into `folder` (written atomically: a half-built cache never loads)."""
    try:
        import grpc_tools
        from grpc_tools import protoc
    except ImportError:
        raise StubsUnavailable(
            "generating TorchServe's gRPC stubs needs grpcio-tools: pip install 'imagelab-client[grpc]'"
        ) from None
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent) as scratch:
        protos, build = Path(scratch) / "protos", Path(scratch) / "build"
        for name, text in sources.items():
            (protos / name).parent.mkdir(parents=True, exist_ok=True)
            (protos / name).write_bytes(text)
        build.mkdir()
        code = protoc.main(
            [
                "protoc",
                f"-I{protos}",
                f"-I{Path(grpc_tools.__file__).parent / '_proto'}",
                f"--python_out={build}",
                f"--grpc_python_out={build}",
                *(str(protos / name) for name in (*PROTOS, STATUS_PROTO)),
            ]
        )
        if code != 0:
            raise StubsUnavailable(f"protoc failed ({code}) compiling {sorted(sources)}")
        _make_package(build)
        try:
            os.replace(build, folder)
        except OSError:  # another process won the race; its copy is as good as ours
            if not (folder / "management_pb2_grpc.py").exists():
                raise
    return folder


def _make_package(build: Path) -> None:
    """Relative imports, so the stubs never shadow (or clash with) top-level `inference_pb2`."""
    (build / "__init__.py").write_text("")
    (build / "google" / "rpc" / "status_pb2.py").rename(build / "status_pb2.py")
    shutil.rmtree(build / "google")
    for path in build.glob("*_pb2*.py"):
        text = path.read_text()
        text = re.sub(r"^import (\w+_pb2) as ", r"from . import \1 as ", text, flags=re.M)
        # A google.rpc.status_pb2 already installed (googleapis-common-protos) owns the
        # descriptor; registering a second copy of it would clash.
        text = text.replace(
            "from google.rpc import status_pb2 as google_dot_rpc_dot_status__pb2",
            "try:\n    from google.rpc import status_pb2 as google_dot_rpc_dot_status__pb2\n"
            "except ImportError:\n    from . import status_pb2 as google_dot_rpc_dot_status__pb2",
        )
        path.write_text(text)


def _import(folder: Path) -> Stubs:
    name = f"_imagelab_torchserve_grpc_{folder.name.rsplit('-', 1)[-1]}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, folder / "__init__.py", submodule_search_locations=[str(folder)]
        )
        package = importlib.util.module_from_spec(spec)
        sys.modules[name] = package
        spec.loader.exec_module(package)
    modules = [
        importlib.import_module(f"{name}.{m}")
        for m in ("inference_pb2", "inference_pb2_grpc", "management_pb2", "management_pb2_grpc")
    ]
    return Stubs(*modules)


def _installed_torchserve() -> list:
    spec = importlib.util.find_spec("ts")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return []
    frontend = Path(list(spec.submodule_search_locations)[0]) / "frontend"
    return [frontend, frontend / "model-server.jar"]


def _read_folder(folder: Path) -> dict:
    for root in (folder, folder / "proto"):
        if all((root / name).is_file() for name in PROTOS):
            found = {name: (root / name).read_bytes() for name in PROTOS}
            for base in (root, folder):
                if (base / STATUS_PROTO).is_file():
                    found[STATUS_PROTO] = (base / STATUS_PROTO).read_bytes()
                    break
            return found
    return {}


def _read_jar(jar: Path) -> dict:
    if not zipfile.is_zipfile(jar):
        return {}
    with zipfile.ZipFile(jar) as bundle:
        names = set(bundle.namelist())
        found = {}
        for name in PROTOS:
            entry = f"proto/{name}" if f"proto/{name}" in names else name
            if entry not in names:
                return {}
            found[name] = bundle.read(entry)
        if STATUS_PROTO in names:
            found[STATUS_PROTO] = bundle.read(STATUS_PROTO)
        return found


def _tools_version() -> str:
    try:
        from importlib.metadata import version

        return f"grpcio-tools {version('grpcio-tools')} protobuf {version('protobuf')}"
    except Exception:  # not installed: the cache key only needs to be stable
        return "unknown"


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    print(load_stubs(cache_dir=target).inference_pb2.__file__)
