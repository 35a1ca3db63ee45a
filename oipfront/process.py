"""The front as a child process of `make serve` (operations/server.py serve_foreground): started
once TorchServe is ready, stopped with it. Its own process, because its gRPC messages share
Triton's protobuf package name (grpc_stubs.py)."""

import subprocess
import sys
from pathlib import Path
from typing import Optional

from oipfront.config import FrontConfig
from repo_paths import REPO_ROOT

STOP_TIMEOUT_S = 10


def start_front_process(
    inference_url: str,
    management_url: str,
    workdir: Path,
    http_port: Optional[int] = None,
    grpc_port: Optional[int] = None,
    caller_key_file: Optional[Path] = None,
    log=None,
) -> subprocess.Popen:
    """`python -m oipfront` before TorchServe, whose tokens are in {workdir}/key_file.json; by
    default on Triton's ports with the callers' key in {workdir}/oip_key.json. `log`: a binary
    file for the front's output (default: this terminal)."""
    defaults = FrontConfig()
    command = [
        sys.executable, "-m", "oipfront",
        "--http-port", str(http_port or defaults.http_port), "--grpc-port", str(grpc_port or defaults.grpc_port),
        "--inference", inference_url, "--management", management_url,
        "--key-file", str(Path(workdir) / "key_file.json"),
        "--caller-key-file", str(caller_key_file or Path(workdir) / "oip_key.json"),
    ]  # fmt: skip
    output = {"stdout": log, "stderr": subprocess.STDOUT} if log is not None else {}
    return subprocess.Popen(command, cwd=REPO_ROOT, **output)


def stop_front_process(process: Optional[subprocess.Popen]) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
