"""A benchmark's own TorchServe: archives built into a scratch store, free loopback ports, and
the worker processes' pids for memory sampling."""

import contextlib
import os
import tempfile
from dataclasses import replace
from pathlib import Path

import psutil
import requests
import yaml

from archiver.build import build_archive
from archiver.capabilities import CAPABILITIES
from operations.server import Ports, TorchServe
from weightstore.layout import WeightsLayout


def build_store(store: Path, models: tuple, config_changes: dict = None, layout: WeightsLayout = None) -> dict:
    """Archives of `models` built into `store` from `layout` (default: weights/); config_changes
    ({key: value}) are laid over each archive's model-config.yaml (e.g. {"batchSize": 1}), so the
    archive is a rebuilt variant."""
    archives = {}
    for name in models:
        capability = CAPABILITIES[name]
        if config_changes:
            config = yaml.safe_load(capability.config.read_text())
            config.update(config_changes)
            variant = store / f"{name}-model-config.yaml"
            variant.parent.mkdir(parents=True, exist_ok=True)
            variant.write_text(yaml.safe_dump(config, sort_keys=False))
            capability = replace(capability, config=variant)
        archives[name] = build_archive(capability, layout or WeightsLayout.default(), store).name
    return archives


@contextlib.contextmanager
def running_server(
    models: tuple,
    config_changes: dict = None,
    ready_timeout_s: float = 600.0,
    overrides: dict = None,
    environment: dict = None,
):
    """-> a ready TorchServe serving `models`, stopped on exit. overrides: config.properties
    values for this server (e.g. number_of_netty_threads); environment: variables the frontend
    and its workers inherit (e.g. OMP_WAIT_POLICY)."""
    with tempfile.TemporaryDirectory(prefix="imagelab-bench-") as scratch, _environ(environment or {}):
        store = Path(scratch) / "store"
        archives = build_store(store, models, config_changes)
        server = TorchServe(Path(scratch) / "work", store, archives, Ports.free(), overrides=overrides)
        server.start()
        try:
            server.wait_ready(ready_timeout_s)
            yield server
        finally:
            server.stop()


@contextlib.contextmanager
def _environ(values: dict):
    """os.environ with `values` laid over it (the server started inside inherits them)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def frontend_pid(server: TorchServe) -> int:
    """The Java frontend: a child of the `torchserve --foreground` launcher."""
    launcher = psutil.Process(server.process.pid)
    for process in [launcher, *launcher.children(recursive=True)]:
        if process.name().startswith("java"):
            return process.pid
    raise RuntimeError("no java process under the TorchServe launcher")


def frontend_metrics(server: TorchServe, model: str) -> dict:
    """{metric name: summed value} of the frontend's Prometheus series for `model` (e.g.
    ts_queue_latency_microseconds, ts_inference_latency_microseconds, ts_inference_requests_total)."""
    headers = {"Authorization": f"Bearer {server.keys().inference}"}
    text = requests.get(f"http://127.0.0.1:{server.ports.metrics}/metrics", headers=headers, timeout=30).text
    totals: dict = {}
    for line in text.splitlines():
        if line.startswith("#") or f'model_name="{model}"' not in line:
            continue
        name, value = line.split("{", 1)[0], line.rsplit(" ", 1)[-1]
        totals[name] = totals.get(name, 0.0) + float(value)
    return totals


def worker_pids(server: TorchServe, model: str) -> list:
    headers = {"Authorization": f"Bearer {server.keys().management}"}
    answer = requests.get(f"{server.management_url}/models/{model}", headers=headers, timeout=30)
    answer.raise_for_status()
    return [int(w["pid"]) for w in answer.json()[0]["workers"] if w.get("pid")]
