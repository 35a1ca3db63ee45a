"""python -m archiver build | serve | weights synth|status|fetch | deploy | rollback | versions |
prune | export-kserve"""

import argparse
import logging
from pathlib import Path

from archiver.build import build_all
from archiver.capabilities import CAPABILITIES
from archiver.versions import next_version
from operations import lifecycle_cli
from operations.server import serve_foreground
from weightstore.fetch import GROUPS, MIRROR_ENV, FetchError, fetch, file_states
from weightstore.layout import REPO_ROOT, WeightsLayout


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m archiver", description=__doc__)
    parser.add_argument("--weights", type=Path, help="weights folder (default: weights/)")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build archives from weights/ into the store")
    build.add_argument("--models", nargs="*", choices=sorted(CAPABILITIES), help="default: all")
    build.add_argument("--version", default="1.0", help='"major.minor", or "next": one above the store\'s newest')
    build.add_argument("--store", type=Path, default=REPO_ROOT / "model_store")
    serve = commands.add_parser("serve", help="run TorchServe in the foreground on the store")
    serve.add_argument("--store", type=Path, default=REPO_ROOT / "model_store")
    serve.add_argument("--workdir", type=Path, default=REPO_ROOT / "var" / "serve")
    serve.add_argument(
        "--allow-deploy", action="store_true", help="open the model API (register/unregister) for `deploy` and `prune`"
    )
    weights = commands.add_parser("weights", help="synthesise or inspect weights")
    weights.add_argument("action", choices=("synth", "status", "fetch"))
    weights.add_argument("--only", nargs="*", choices=GROUPS, help="fetch: these groups only")
    weights.add_argument("--mirror", help=f"fetch: {{mirror}}/{{host}}{{path}} for every URL (or ${MIRROR_ENV})")
    weights.add_argument("--variant", choices=("fp16",), help="fetch: SD 1.5 half-precision files")
    lifecycle_cli.add_commands(commands)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    layout = WeightsLayout(args.weights) if args.weights else WeightsLayout.default()
    if args.command in lifecycle_cli.COMMANDS:
        lifecycle_cli.run(args)
    elif args.command == "build":
        for path in _build(layout, args):
            print(f"built {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    elif args.command == "serve":
        serve_foreground(args.store, args.workdir, {"enable_model_api": "true"} if args.allow_deploy else None)
    elif args.action == "fetch":
        try:
            for fetched in fetch(layout.root, args.only, args.mirror, args.variant):
                print(f"{fetched.status:10s} {fetched.target:50s} sha256 {fetched.sha256[:16]}")
        except FetchError as error:
            raise SystemExit(f"error: {error}") from None
    else:
        for name, capability in CAPABILITIES.items():
            plan = capability.plan(layout)  # resolving synthesises what is missing
            for weight in plan.weights:
                kind = "TINY SYNTHETIC" if weight.synthetic else "real"
                print(f"{name:12s} {weight.archive_path:40s} {kind:15s} {weight.source}")
        if args.action == "status":
            print("\ndownloadable with `python -m archiver weights fetch`:")
            for group, target, state in file_states(layout.root, args.variant):
                print(f"{group:12s} {target:56s} {state}")


def _build(layout: WeightsLayout, args) -> list:
    if args.version != "next":
        return build_all(layout, args.store, args.models, args.version)
    names = args.models or list(CAPABILITIES)
    return [p for n in names for p in build_all(layout, args.store, [n], next_version(args.store, n))]


if __name__ == "__main__":
    main()
