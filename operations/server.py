"""Start and stop a TorchServe with this repository's config: used by `make serve`, the tests,
the load tests and the deploy flow, so there is one way to run the server."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import requests

from archiver.versions import ARCHIVE_NAME, archive_manifest  # noqa: F401 (archive_manifest: re-exported)
from imagelab.cancellation import CANCEL_DIR_ENV, cancel_dir
from oipfront.process import start_front_process, stop_front_process
from repo_paths import CONFIG_PROPERTIES


@dataclass(frozen=True)
class Ports:
    inference: int = 8080
    management: int = 8081
    metrics: int = 8082
    grpc_inference: int = 7070
    grpc_management: int = 7071

    @staticmethod
    def free() -> "Ports":
        """Five ports the OS says are free on loopback now."""
        return Ports(*free_ports(5))


def free_ports(count: int) -> list:
    """`count` ports the OS says are free on loopback now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass(frozen=True)
class Keys:
    inference: str
    management: str


def render_config(base: Path, ports: Ports, overrides: Optional[dict] = None) -> str:
    """The repository's config.properties with the ports (and any overrides) replaced."""
    values = {
        "inference_address": f"http://127.0.0.1:{ports.inference}",
        "management_address": f"http://127.0.0.1:{ports.management}",
        "metrics_address": f"http://127.0.0.1:{ports.metrics}",
        "grpc_inference_port": str(ports.grpc_inference),
        "grpc_management_port": str(ports.grpc_management),
        **(overrides or {}),
    }
    lines, seen = [], set()
    for line in Path(base).read_text().splitlines():
        key = line.split("=", 1)[0].strip()
        if not line.lstrip().startswith("#") and key in values:
            lines.append(f"{key}={values[key]}")
            seen.add(key)
        else:
            lines.append(line)
    lines += [f"{k}={v}" for k, v in values.items() if k not in seen]
    return "\n".join(lines) + "\n"


def latest_archives(store: Path) -> dict:
    """{model: file name} of the highest version of each model in the store."""
    best = {}
    for path in Path(store).glob("*.mar"):
        match = ARCHIVE_NAME.match(path.name)
        if not match:
            continue
        version = tuple(int(p) for p in match["version"].split(".") if p)
        model = match["model"]
        if model not in best or version > best[model][0]:
            best[model] = (version, path.name)
    return {model: name for model, (_, name) in sorted(best.items())}


def read_keys(workdir: Path) -> Keys:
    """TorchServe writes its tokens to key_file.json in its working directory."""
    data = json.loads((Path(workdir) / "key_file.json").read_text())
    return Keys(data["inference"]["key"], data["management"]["key"])


class TorchServe:
    """A TorchServe process in `workdir` serving `models` from `store`: {name: archive}, or
    {name: [archive, ...]} for several versions of one model (the first is the default)."""

    def __init__(
        self,
        workdir: Path,
        store: Path,
        models: dict,
        ports: Ports = Ports(),
        config: Path = CONFIG_PROPERTIES,
        overrides: Optional[dict] = None,
    ):
        self.workdir = Path(workdir)
        self.store = Path(store).resolve()
        self.models = models
        self.ports = ports
        self.config = config
        self.overrides = overrides
        self.process = None

    @property
    def inference_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.inference}"

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.management}"

    def command(self) -> list:
        bin_dir = Path(sys.executable).parent
        models = ",".join(f"{name}={archive}" for name, archive in self._archives())
        return [
            str(bin_dir / "torchserve"),
            "--start",
            "--foreground",
            "--ncs",
            "--ts-config",
            str(self.workdir / "config.properties"),
            "--model-store",
            str(self.store),
            "--models",
            models,
        ]

    def _archives(self) -> list:
        """(name, archive) pairs, one per version to load."""
        return [
            (name, archive)
            for name, archives in self.models.items()
            for archive in ([archives] if isinstance(archives, (str, Path)) else archives)
        ]

    def prepare(self) -> None:
        (self.workdir / "tmp").mkdir(parents=True, exist_ok=True)
        (self.workdir / "key_file.json").unlink(missing_ok=True)
        (self.workdir / "config.properties").write_text(render_config(self.config, self.ports, self.overrides))

    def environment(self) -> dict:
        env = dict(os.environ)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        # TorchServe keeps one PID file in the temp dir and refuses a second instance; a temp
        # dir per instance lets tests, a dev server and the deploy flow run side by side.
        env["TMPDIR"] = str(self.workdir / "tmp")
        env["TEMP"] = str(self.workdir / "tmp")  # the frontend's java.io.tmpdir (model unpacking)
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("TRANSFORMERS_OFFLINE", "1")
        # Where the workers look for cancel markers, and the v2 front and gateway write them.
        env[CANCEL_DIR_ENV] = str(cancel_dir(self.workdir))
        return env

    def start(self, console: bool = False) -> None:
        """console: TorchServe's output on this terminal; else in workdir/torchserve.out."""
        self.prepare()
        log = None if console else open(self.workdir / "torchserve.out", "wb")
        self.process = subprocess.Popen(
            self.command(),
            cwd=self.workdir,
            env=self.environment(),
            stdout=log,
            stderr=subprocess.STDOUT if log else None,
            start_new_session=True,
        )

    def keys(self) -> Keys:
        return read_keys(self.workdir)

    def wait_ready(self, timeout_s: float = 300.0) -> None:
        """Until every version of every model has a READY worker; raises with the log tail."""
        deadline = time.monotonic() + timeout_s
        pending = set(self.models)
        while pending and time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"TorchServe exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                headers = {"Authorization": f"Bearer {self.keys().management}"}
                for model in sorted(pending):
                    answer = requests.get(f"{self.management_url}/models/{model}/all", headers=headers, timeout=5)
                    versions = answer.json() if answer.ok else []
                    wanted = sum(1 for name, _ in self._archives() if name == model)
                    ready = [v for v in versions if any(w["status"] == "READY" for w in v["workers"])]
                    if len(versions) >= wanted and len(ready) == len(versions):
                        pending.discard(model)
            except (OSError, ValueError, KeyError, requests.RequestException):
                pass
            time.sleep(0.5)
        if pending:
            raise TimeoutError(f"models not ready after {timeout_s} s: {sorted(pending)}\n{self.log_tail()}")

    def log_tail(self, lines: int = 60) -> str:
        path = self.workdir / "logs" / "ts_log.log"
        if not path.exists():
            path = self.workdir / "torchserve.out"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM the whole process group (frontend and Python workers), then SIGKILL."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def serve_foreground(store: Path, workdir: Path, overrides: Optional[dict] = None) -> None:
    """`make serve`: the newest archive of every model on the default ports until Ctrl-C.
    overrides: config.properties values for this server only (deploy.py: enable_model_api)."""
    models = latest_archives(store)
    if not models:
        raise SystemExit(f"no archives in {store}; run `make archives` first")
    server = TorchServe(workdir, store, models, overrides=overrides)
    # SIGTERM (systemd, a container runtime, kill) stops the server as Ctrl-C does.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    server.start(console=True)
    print(f"TorchServe starting in {workdir} with {', '.join(f'{m} ({a})' for m, a in models.items())}")
    for model, archive in models.items():
        manifest = archive_manifest(Path(store) / archive)
        synthetic = sorted({w["path"] for w in manifest.get("weights", []) if w.get("synthetic")})
        if synthetic:
            print(
                f"  {model}: serving TINY SYNTHETIC offline weights for {len(synthetic)} file(s) "
                f"(drop real ones into weights/, see README): {', '.join(synthetic[:6])}"
            )
        base = manifest.get("base_model")
        if isinstance(base, dict):
            where = "embedded" if base.get("embedded") else base["path"]
            print(f"  {model}: base model {base['identity'][:12]} ({where}), checked when each worker starts")
    front = None  # the Open Inference Protocol front on 8000/8001 (oipfront/)
    try:
        server.wait_ready()
        front = start_front_process(server.inference_url, server.management_url, workdir)
        print(
            f"ready: inference {server.inference_url}, management {server.management_url}; "
            f"tokens in {workdir / 'key_file.json'} (inference key: {server.keys().inference})"
        )
        print(f"logs: {workdir / 'logs'}; Ctrl-C stops the server")
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_front_process(front)
        server.stop()


def _raise_keyboard_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
