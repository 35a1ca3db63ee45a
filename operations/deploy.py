"""Deploy, roll back and prune archive versions on a running TorchServe, through its
management API with token authorization.

The management API's register/unregister calls are closed in the repository's config
(`enable_model_api=false`); TorchServe cannot open them at run time. A server that is to take
deployments is started for that purpose with `python -m operations serve --allow-deploy`, which
sets `enable_model_api=true` for that server only (still loopback-only, still token-guarded).
Against a closed server, `deploy` and `prune` stop with a message saying so; `rollback` only
switches the default version, which TorchServe allows either way.

A deploy never takes the old default out of service before the new version has proved itself:
register (new workers, old default still answering) -> smoke test on
/predictions/{model}/{version} -> set default. Any failure unregisters the new version and
leaves the previous default serving.
"""

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Optional

import requests

from archiver.versions import archive_identity, archive_manifest, archive_path, parse_version, verify_archive
from handlers.services.base_model_check import MANIFEST_KEY, base_model_mismatches
from operations.server import Keys, read_keys
from operations.smoke import SmokeResult, run_smoke_test

logger = logging.getLogger(__name__)

KEY_ENV = ("IMAGELAB_INFERENCE_KEY", "IMAGELAB_MANAGEMENT_KEY")


class DeployError(RuntimeError):
    pass


@dataclass(frozen=True)
class Endpoint:
    """Where a TorchServe listens and how to authenticate. Keys are read from the server's
    key_file.json at each call (TorchServe renews them every 60 minutes) unless given."""

    management_url: str
    inference_url: str
    workdir: Optional[Path] = None
    keys: Optional[Keys] = None
    timeout_s: float = 300.0

    @staticmethod
    def from_workdir(workdir: Path, **kwargs) -> "Endpoint":
        """Addresses from the config.properties TorchServe was started with in `workdir`."""
        config = Path(workdir) / "config.properties"
        if not config.is_file():
            raise DeployError(f"{config} not found: is a TorchServe running in {workdir}?")
        values = dict(
            line.split("=", 1)
            for line in config.read_text().splitlines()
            if "=" in line and not line.lstrip().startswith("#")
        )
        loopback = lambda address: address.strip().replace("0.0.0.0", "127.0.0.1")  # noqa: E731
        return Endpoint(
            loopback(values["management_address"]),
            loopback(values["inference_address"]),
            workdir=Path(workdir),
            **kwargs,
        )

    def current_keys(self) -> Optional[Keys]:
        if self.keys is not None:
            return self.keys
        if all(os.environ.get(name) for name in KEY_ENV):
            return Keys(*(os.environ[name] for name in KEY_ENV))
        if self.workdir is not None and (self.workdir / "key_file.json").is_file():
            return read_keys(self.workdir)
        return None  # a server with token authorization disabled

    def headers(self, api: str) -> dict:
        keys = self.current_keys()
        return {"Authorization": f"Bearer {getattr(keys, api)}"} if keys else {}


class ManagementClient:
    """The few management calls the lifecycle needs; every error names the server's reason."""

    def __init__(self, endpoint: Endpoint):
        self.endpoint = endpoint

    def _call(self, method: str, path: str, ok=(200,), **kwargs) -> requests.Response:
        url = f"{self.endpoint.management_url}{path}"
        try:
            answer = requests.request(
                method, url, headers=self.endpoint.headers("management"), timeout=self.endpoint.timeout_s, **kwargs
            )
        except requests.RequestException as error:
            raise DeployError(f"{method} {url}: no answer from TorchServe ({error})") from error
        if answer.status_code == 405:
            raise DeployError(
                f"{method} {path}: the server's model API is closed (enable_model_api=false). "
                "Start the server that takes deployments with `python -m operations serve --allow-deploy`."
            )
        if answer.status_code not in ok:
            raise DeployError(f"{method} {path}: {answer.status_code} {_message(answer)}")
        return answer

    def registered_versions(self, model: str) -> list:
        """Registered versions of `model`, lowest first ([] when the model is unknown)."""
        answer = self._call("GET", f"/models/{model}/all", ok=(200, 404))
        if answer.status_code == 404:
            return []
        return sorted((d["modelVersion"] for d in answer.json()), key=parse_version)

    def default_version(self, model: str) -> Optional[str]:
        answer = self._call("GET", f"/models/{model}", ok=(200, 404))
        return answer.json()[0]["modelVersion"] if answer.status_code == 200 else None

    def register(self, archive_name: str, model: str, workers: int) -> None:
        """By file name in the server's model store (URL registration stays closed by
        allowed_urls); synchronous, so it returns once the workers loaded the archive."""
        self._call(
            "POST",
            "/models",
            params={"url": archive_name, "model_name": model, "initial_workers": workers, "synchronous": "true"},
        )

    def set_default(self, model: str, version: str) -> None:
        self._call("PUT", f"/models/{model}/{version}/set-default")

    def unregister(self, model: str, version: Optional[str] = None) -> None:
        """One version, or (version None) the default one. 404 counts as done: TorchServe drops
        a version whose workers failed to start."""
        self._call("DELETE", f"/models/{model}" + (f"/{version}" if version else ""), ok=(200, 404))


class DeployResult(NamedTuple):
    model: str
    version: str
    previous_default: Optional[str]
    smoke: SmokeResult


def deploy(endpoint: Endpoint, archive: Path, workers: int = 1) -> DeployResult:
    """Make `archive` (a file in the server's model store) the default version of its model."""
    archive = Path(archive)
    if workers < 1:
        raise ValueError(f"workers must be at least 1; got {workers}")
    identity = archive_identity(archive)
    corrupt = verify_archive(archive)
    if corrupt:
        raise DeployError(f"{archive.name}: weights differ from its manifest: {', '.join(corrupt)}")
    check_base_model_of(archive)
    model, version = identity
    client = ManagementClient(endpoint)
    previous = client.default_version(model)
    if version in client.registered_versions(model):
        raise DeployError(
            f"{model} {version} is already registered; deploy a new version "
            f"(python -m archiver build --version next) or use rollback --to {version}"
        )
    logger.info("registering %s %s with %d worker(s); %s keeps serving", model, version, workers, previous or "nothing")
    pending = pending_marker(archive.parent, model, version)
    pending.parent.mkdir(exist_ok=True)
    pending.write_text(f"{previous or ''}\n")  # prune removes the version if this outlives us
    deployed = False
    try:
        client.register(archive.name, model, workers)
        smoke = run_smoke_test(
            endpoint.inference_url, model, version, endpoint.headers("inference"), endpoint.timeout_s
        )
        if not smoke.ok:
            raise DeployError(
                f"smoke test of {model} {version} failed ({smoke.status}): {smoke.detail}; "
                f"{previous or 'no version'} stays the default"
            )
        logger.info("smoke test of %s %s passed in %.0f ms (%s)", model, version, smoke.elapsed_ms, smoke.detail)
        client.set_default(model, version)
        deployed = True
    finally:
        # Any way out before the new default is set (an error, Ctrl-C, SIGTERM raised as
        # KeyboardInterrupt) withdraws the new version: no orphan is left registered.
        if deployed or _withdraw(client, model, version, previous):
            pending.unlink(missing_ok=True)
    return DeployResult(model, version, previous, smoke)


def pending_marker(store: Path, model: str, version: str) -> Path:
    """Written before a deploy registers, removed once it is the default or withdrawn: a
    marker left behind (the deploy was killed, or the withdrawal failed) names an orphan."""
    return Path(store) / ".deploys" / f"{model}-{version}.pending"


def _withdraw(client: ManagementClient, model: str, version: str, previous: Optional[str]) -> bool:
    """Best effort: the caller re-raises the error that matters, so cleanup errors only log.
    -> whether the version is gone."""
    try:
        if previous is None:  # the new version was the model's only one, hence its default
            client.unregister(model)
            return True
        if client.default_version(model) != previous:
            client.set_default(model, previous)
        client.unregister(model, version)
        return True
    except DeployError as error:
        logger.warning("could not withdraw %s %s: %s; `prune` removes it later", model, version, error)
        return False


class RollbackResult(NamedTuple):
    model: str
    from_version: str
    to_version: str


def check_base_model_of(archive: Path) -> None:
    """DeployError when the shared base model `archive` was built against (its manifest's
    `base_model` file hashes) is not what its folder holds now: its workers would refuse to
    start, or (rolled back to while running) would serve other weights than it names."""
    record = archive_manifest(archive).get(MANIFEST_KEY)
    if not isinstance(record, dict) or record.get("embedded"):
        return
    problems = base_model_mismatches(record, Path(record["path"]))
    if problems:
        raise DeployError(
            f"{archive.name} was built against base model {record.get('identity', '?')[:12]} at {record['path']}, "
            f"which has changed since: {'; '.join(problems[:3])}; rebuild it (--version next) or restore the folder"
        )


def rollback(endpoint: Endpoint, model: str, to: Optional[str] = None, store: Optional[Path] = None) -> RollbackResult:
    """Default -> `to`, or else the highest registered version below the current default
    (deploys go up in version, so that is the default before the last deploy). Given the
    server's store, a target whose base model has changed on disk is refused."""
    client = ManagementClient(endpoint)
    current = client.default_version(model)
    if current is None:
        raise DeployError(f"{model} is not registered on {endpoint.management_url}")
    registered = client.registered_versions(model)
    if to is None:
        older = [v for v in registered if parse_version(v) < parse_version(current)]
        if not older:
            raise DeployError(
                f"{model}: no registered version older than the default {current} (registered: {', '.join(registered)})"
            )
        to = older[-1]
    elif to not in registered:
        raise DeployError(f"{model} {to} is not registered (registered: {', '.join(registered)})")
    if store is not None and archive_path(store, model, to).is_file():
        check_base_model_of(archive_path(store, model, to))
    client.set_default(model, to)
    return RollbackResult(model, current, to)


def prune(endpoint: Endpoint, model: str, keep: int, store: Optional[Path] = None) -> list:
    """Unregister all but the `keep` newest versions, and (given the server's store) every
    orphan: a non-default version whose deploy never finished (pending_marker). The default
    always stays. -> the removed versions."""
    if keep < 1:
        raise ValueError(f"keep must be at least 1; got {keep}")
    client = ManagementClient(endpoint)
    default = client.default_version(model)
    registered = client.registered_versions(model)
    orphans = {v for v in registered if store is not None and pending_marker(store, model, v).is_file()}
    kept = (set(registered[-keep:]) - orphans) | {default}
    removed = [v for v in registered if v not in kept]
    for version in removed:
        client.unregister(model, version)
        if store is not None:
            pending_marker(store, model, version).unlink(missing_ok=True)
    return removed


def _message(answer: requests.Response) -> str:
    try:
        return answer.json().get("message", answer.text)
    except ValueError:
        return answer.text[:500]
