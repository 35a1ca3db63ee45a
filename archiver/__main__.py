"""python -m archiver build | serve | weights synth | weights status"""

import argparse
import logging
from pathlib import Path

from archiver.build import build_all
from archiver.capabilities import CAPABILITIES
from archiver.layout import REPO_ROOT, WeightsLayout
from archiver.server import serve_foreground


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m archiver", description=__doc__)
    parser.add_argument("--weights", type=Path, help="weights folder (default: weights/)")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build archives from weights/ into the store")
    build.add_argument("--models", nargs="*", choices=sorted(CAPABILITIES), help="default: all")
    build.add_argument("--version", default="1.0")
    build.add_argument("--store", type=Path, default=REPO_ROOT / "model_store")
    serve = commands.add_parser("serve", help="run TorchServe in the foreground on the store")
    serve.add_argument("--store", type=Path, default=REPO_ROOT / "model_store")
    serve.add_argument("--workdir", type=Path, default=REPO_ROOT / "var" / "serve")
    weights = commands.add_parser("weights", help="synthesise or inspect weights")
    weights.add_argument("action", choices=("synth", "status"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    layout = WeightsLayout(args.weights) if args.weights else WeightsLayout.default()
    if args.command == "build":
        for path in build_all(layout, args.store, args.models, args.version):
            print(f"built {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    elif args.command == "serve":
        serve_foreground(args.store, args.workdir)
    else:
        for name, capability in CAPABILITIES.items():
            plan = capability.plan(layout)  # resolving synthesises what is missing
            for weight in plan.weights:
                kind = "TINY SYNTHETIC" if weight.synthetic else "real"
                print(f"{name:12s} {weight.archive_path:40s} {kind:15s} {weight.source}")


if __name__ == "__main__":
    main()
