"""python -m archiver build | status: the archives room's commands.

build   weights/ -> versioned .mar archives in the store (tiny stand-ins for missing weights)
status  each archive's base model (hash) and whether the shared folder still holds it

The weights have their own room (`python -m weightstore synth|status|fetch`), serving and the
lifecycle theirs (`python -m operations serve|deploy|rollback|versions|prune|export-kserve`).
"""

import argparse
import logging
import sys
from pathlib import Path

from archiver.build import build_all
from archiver.capabilities import CAPABILITIES
from archiver.status import archive_status_lines
from archiver.versions import next_version
from repo_paths import MODEL_STORE
from weightstore.layout import WeightsLayout


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m archiver", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--weights", type=Path, help="weights folder (default: weights/ or $IMAGELAB_WEIGHTS)")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build archives from weights/ into the store")
    build.add_argument("--models", nargs="*", choices=sorted(CAPABILITIES), help="default: all")
    build.add_argument("--version", default="1.0", help='"major.minor", or "next": one above the store\'s newest')
    build.add_argument("--store", type=Path, default=MODEL_STORE)
    status = commands.add_parser("status", help="base model and synthetic weights of every archive in the store")
    status.add_argument("--store", type=Path, default=MODEL_STORE)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    layout = WeightsLayout(args.weights) if args.weights else WeightsLayout.default()
    if args.command == "status":
        for line in archive_status_lines(args.store) or [f"no archives in {args.store}"]:
            print(line)
        return
    try:
        for path in _build(layout, args):
            print(f"built {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    except (ValueError, FileNotFoundError) as error:  # a misfit LoRA, a bad config key, a missing file
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None


def _build(layout: WeightsLayout, args) -> list:
    if args.version != "next":
        return build_all(layout, args.store, args.models, args.version)
    names = args.models or list(CAPABILITIES)
    return [p for n in names for p in build_all(layout, args.store, [n], next_version(args.store, n))]


if __name__ == "__main__":
    main()
