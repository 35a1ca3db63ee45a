"""python -m weightstore synth | status | fetch: the weights room's own commands.

synth   make the stand-ins every capability lacks (or whose base model changed)
status  say which weights are real, which synthetic and for which base model; writes nothing
fetch   download the real ones (checksummed, resumable)
"""

import argparse
import logging
from pathlib import Path

from weightstore.fetch import GROUPS, MIRROR_ENV, FetchError, fetch, file_states
from weightstore.layout import WeightsLayout
from weightstore.needs import WeightMismatch, resolve_needs
from weightstore.status import CAPABILITY_NAMES, status_lines


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m weightstore", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--weights", type=Path, help="weights folder (default: weights/ or $IMAGELAB_WEIGHTS)")
    commands = parser.add_subparsers(dest="command", required=True)
    synth = commands.add_parser("synth", help="synthesise the stand-ins for whatever is missing")
    synth.add_argument("--models", nargs="*", choices=CAPABILITY_NAMES, help="default: all")
    synth.add_argument("--full-size", action="store_true", help="instead: full-size random models, cached")
    synth.add_argument("--out", type=Path, help="--full-size: cache folder (default: $IMAGELAB_FULLSIZE_CACHE)")
    status = commands.add_parser("status", help="real, synthetic (for which base), missing; writes nothing")
    status.add_argument("--variant", choices=("fp16",), help="list SD 1.5's half-precision downloads")
    get = commands.add_parser("fetch", help="download the real weights")
    get.add_argument("--only", nargs="*", choices=GROUPS, help="these groups only")
    get.add_argument("--mirror", help=f"{{mirror}}/{{host}}{{path}} for every URL (or ${MIRROR_ENV})")
    get.add_argument("--variant", choices=("fp16",), help="SD 1.5 half-precision files")
    get.add_argument("--allow-http", action="store_true", help="accept a mirror or HF_ENDPOINT over plain HTTP")
    get.add_argument(
        "--trust-on-first-use",
        action="store_true",
        help="download files with no reviewed pin (weightstore/pins.json) at the hub's current commit",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    layout = WeightsLayout(args.weights) if args.weights else WeightsLayout.default()
    if args.command == "synth" and args.full_size:
        from weightstore.full_size import synthesize_full_size

        synthesize_full_size(args.out)
    elif args.command == "synth":
        try:
            for capability in args.models or CAPABILITY_NAMES:
                resolved = resolve_needs(capability, layout)
                if resolved.base is not None:
                    kind = "TINY SYNTHETIC" if resolved.base.synthetic else "real"
                    print(f"{capability:12s} {'base_model':24s} {kind:15s} {resolved.base.path}")
                for name, weight in resolved.weights.items():
                    kind = "TINY SYNTHETIC" if weight.synthetic else "real"
                    print(f"{capability:12s} {name:24s} {kind:15s} {weight.path}")
        except WeightMismatch as error:
            raise SystemExit(f"error: {error}") from None
    elif args.command == "status":
        for line in status_lines(layout):
            print(line)
        print("\ndownloadable with `python -m weightstore fetch`:")
        for group, target, state in file_states(layout.root, args.variant):
            print(f"{group:12s} {target:56s} {state}")
    else:
        try:
            for fetched in fetch(
                layout.root,
                args.only,
                args.mirror,
                args.variant,
                allow_http=args.allow_http,
                trust_on_first_use=args.trust_on_first_use,
            ):
                print(f"{fetched.status:10s} {fetched.target:50s} sha256 {fetched.sha256[:16]}")
        except FetchError as error:
            raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    main()
