"""The lifecycle subcommands of `python -m operations`: deploy, rollback, versions, prune,
export-kserve. Connection options name a running TorchServe: by its working directory
(addresses from its config.properties, tokens from its key_file.json; default var/serve/), or
by --url/--inference-url with --key-file or IMAGELAB_{INFERENCE,MANAGEMENT}_KEY."""

import argparse
import json
import sys
from pathlib import Path

from archiver.versions import archive_path, latest_version, list_versions
from operations.deploy import DeployError, Endpoint, ManagementClient, deploy, prune, rollback
from operations.kserve import export_kserve
from operations.server import Keys
from repo_paths import MODEL_STORE as STORE
from repo_paths import REPO_ROOT
from repo_paths import SERVE_WORKDIR as WORKDIR

COMMANDS = ("deploy", "rollback", "versions", "prune", "export-kserve")


def add_commands(commands) -> None:
    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument("--workdir", type=Path, default=WORKDIR, help="the server's working directory")
    connection.add_argument("--url", help="management API URL (instead of the workdir's config)")
    connection.add_argument("--inference-url", help="inference API URL, with --url")
    connection.add_argument("--key-file", type=Path, help="a key_file.json (default: the workdir's)")
    connection.add_argument("--store", type=Path, default=STORE, help="the server's model store")

    deploy_ = commands.add_parser(
        "deploy", parents=[connection], help="register a version, smoke-test it, make it the default"
    )
    deploy_.add_argument("model")
    which = deploy_.add_mutually_exclusive_group()
    which.add_argument("--archive", type=Path, help="a .mar file (copied into the store if outside it)")
    which.add_argument("--version", help="an archive version in the store (default: the newest)")
    deploy_.add_argument("--workers", type=int, default=1)

    rollback_ = commands.add_parser(
        "rollback", parents=[connection], help="make the previous version the default again"
    )
    rollback_.add_argument("model")
    rollback_.add_argument("--to", help="this version (default: the highest below the default)")

    versions = commands.add_parser("versions", parents=[connection], help="versions in the store and on the server")
    versions.add_argument("model")

    prune_ = commands.add_parser(
        "prune", parents=[connection], help="unregister all but the newest versions (and the default)"
    )
    prune_.add_argument("model")
    prune_.add_argument("--keep", type=int, required=True)

    export = commands.add_parser("export-kserve", help="config/ + model-store/ for KServe or Kubernetes")
    export.add_argument("--store", type=Path, default=STORE)
    export.add_argument("--out", type=Path, default=REPO_ROOT / "export" / "kserve")
    export.add_argument(
        "--token-auth", action="store_true", help="keep TorchServe's token authorization (single replica only)"
    )


def endpoint_from(args) -> Endpoint:
    keys = None
    if args.key_file:
        data = json.loads(args.key_file.read_text())
        keys = Keys(data["inference"]["key"], data["management"]["key"])
    if args.url:
        if not args.inference_url:
            raise SystemExit("--url needs --inference-url too (the smoke test uses the inference API)")
        workdir = args.workdir if (args.workdir / "key_file.json").is_file() else None
        return Endpoint(args.url.rstrip("/"), args.inference_url.rstrip("/"), workdir=workdir, keys=keys)
    return Endpoint.from_workdir(args.workdir, keys=keys)


def run(args) -> None:
    try:
        _run(args)
    except (DeployError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None


def _run(args) -> None:
    if args.command == "export-kserve":
        export = export_kserve(args.store, args.out, token_auth=args.token_auth)
        print(
            f"exported {', '.join(export.models.values())} to {export.root} "
            f"(mount it at /mnt/models; see deploy/k8s/README.md)\n"
            f"SHA256SUMS sha256 (the pods' sums-sha256, deploy/k8s/export-verify.yaml): {export.sums_sha256}"
        )
        return
    if args.command == "versions":
        _print_versions(args)
        return
    endpoint = endpoint_from(args)
    if args.command == "deploy":
        result = deploy(endpoint, _archive_for(args), args.workers)
        previous = f" (was {result.previous_default})" if result.previous_default else ""
        print(
            f"{result.model} {result.version} is the default{previous}; "
            f"smoke test {result.smoke.detail} in {result.smoke.elapsed_ms:.0f} ms"
        )
    elif args.command == "rollback":
        result = rollback(endpoint, args.model, args.to, args.store)
        print(f"{result.model}: default {result.from_version} -> {result.to_version}")
    elif args.command == "prune":
        removed = prune(endpoint, args.model, args.keep, args.store)
        print(f"{args.model}: unregistered {', '.join(removed) or 'nothing'}")


def _archive_for(args) -> Path:
    """The archive to deploy, inside the server's store (TorchServe registers by file name)."""
    store = args.store.resolve()
    if args.archive is not None:
        source = args.archive.resolve()
        if source.parent == store:
            return source
        target = store / source.name
        if target.exists():
            raise ValueError(
                f"{target} already exists; a store archive is never replaced, build the new one with --version next"
            )
        import shutil

        shutil.copy2(source, target.with_name(target.name + ".part"))
        target.with_name(target.name + ".part").replace(target)
        return target
    version = args.version or latest_version(store, args.model)
    if version is None:
        raise ValueError(f"no {args.model} archive in {store}; run `python -m archiver build`")
    path = archive_path(store, args.model, version)
    if not path.is_file():
        raise ValueError(f"{path} not found; versions in the store: {list_versions(store, args.model)}")
    return path


def _print_versions(args) -> None:
    stored = list_versions(args.store, args.model)
    print(f"{args.model} in {args.store}: {', '.join(stored) or 'none'}")
    try:
        client = ManagementClient(endpoint_from(args))
        registered = client.registered_versions(args.model)
        default = client.default_version(args.model)
    except (DeployError, SystemExit, KeyError, OSError) as error:
        print(f"server: not reachable ({error})")
        return
    marked = [f"{v} (default)" if v == default else v for v in registered]
    print(f"{args.model} on {client.endpoint.management_url}: {', '.join(marked) or 'not registered'}")
