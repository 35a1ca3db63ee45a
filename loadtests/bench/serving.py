"""A benchmark's own TorchServe: archives built into a scratch store, free loopback ports, and
the worker processes' pids for memory sampling."""

import contextlib
import tempfile
from dataclasses import replace
from pathlib import Path

import requests
import yaml

from archiver.build import build_archive
from archiver.capabilities import CAPABILITIES
from operations.server import Ports, TorchServe
from weightstore.layout import WeightsLayout


def build_store(store: Path, models: tuple, config_changes: dict = None) -> dict:
    """Archives of `models` built into `store`; config_changes ({key: value}) are laid over each
    archive's model-config.yaml (e.g. {"batchSize": 1}), so the archive is a rebuilt variant."""
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
        archives[name] = build_archive(capability, WeightsLayout.default(), store).name
    return archives


@contextlib.contextmanager
def running_server(models: tuple, config_changes: dict = None, ready_timeout_s: float = 600.0):
    """-> a ready TorchServe serving `models`, stopped on exit."""
    with tempfile.TemporaryDirectory(prefix="imagelab-bench-") as scratch:
        store = Path(scratch) / "store"
        archives = build_store(store, models, config_changes)
        server = TorchServe(Path(scratch) / "work", store, archives, Ports.free())
        server.start()
        try:
            server.wait_ready(ready_timeout_s)
            yield server
        finally:
            server.stop()


def worker_pids(server: TorchServe, model: str) -> list:
    headers = {"Authorization": f"Bearer {server.keys().management}"}
    answer = requests.get(f"{server.management_url}/models/{model}", headers=headers, timeout=30)
    answer.raise_for_status()
    return [int(w["pid"]) for w in answer.json()[0]["workers"] if w.get("pid")]
