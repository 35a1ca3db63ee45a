"""python -m operations serve | deploy | rollback | versions | prune | export-kserve: running
TorchServe on the store and moving versions in and out of service (operations/lifecycle_cli.py)."""

import argparse
import logging
from pathlib import Path

from operations import lifecycle_cli
from operations.server import serve_foreground
from repo_paths import MODEL_STORE, SERVE_WORKDIR


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m operations", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run TorchServe in the foreground on the store")
    serve.add_argument("--store", type=Path, default=MODEL_STORE)
    serve.add_argument("--workdir", type=Path, default=SERVE_WORKDIR)
    serve.add_argument(
        "--allow-deploy", action="store_true", help="open the model API (register/unregister) for `deploy` and `prune`"
    )
    lifecycle_cli.add_commands(commands)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "serve":
        serve_foreground(args.store, args.workdir, {"enable_model_api": "true"} if args.allow_deploy else None)
    else:
        lifecycle_cli.run(args)


if __name__ == "__main__":
    main()
