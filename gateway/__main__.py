"""python -m gateway --port 8090 --inference http://127.0.0.1:8080 --management http://127.0.0.1:8081
--key-file var/serve/key_file.json"""

import argparse
import logging
from pathlib import Path

from gateway.config import DEFAULT_MAX_REQUEST_BYTES, DEFAULT_STATIC_DIR, GatewayConfig
from gateway.server import make_gateway


def parse_args(argv=None) -> GatewayConfig:
    parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--inference", default="http://127.0.0.1:8080", help="TorchServe inference URL")
    parser.add_argument("--management", default="http://127.0.0.1:8081", help="TorchServe management URL")
    parser.add_argument(
        "--key-file",
        type=Path,
        default=Path("var/serve/key_file.json"),
        help="TorchServe's key_file.json (read on this side only; never sent to the browser)",
    )
    parser.add_argument("--static-dir", type=Path, default=DEFAULT_STATIC_DIR, help="the built playground")
    parser.add_argument("--max-request-bytes", type=int, default=DEFAULT_MAX_REQUEST_BYTES)
    parser.add_argument("--upstream-timeout-s", type=float, default=600.0)
    parser.add_argument(
        "--allow-set-default",
        action="store_true",
        help="forward PUT /api/models/{model}/{version}/set-default (changes every client's default)",
    )
    args = parser.parse_args(argv)
    try:
        return GatewayConfig(
            inference_url=args.inference,
            management_url=args.management,
            key_file=args.key_file,
            static_dir=args.static_dir,
            host=args.host,
            port=args.port,
            max_request_bytes=args.max_request_bytes,
            upstream_timeout_s=args.upstream_timeout_s,
            allow_set_default=args.allow_set_default,
        )
    except ValueError as error:
        parser.error(str(error))


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = parse_args(argv)
    gateway = make_gateway(config)
    print(
        f"imagelab playground on {gateway.url} -> inference {config.inference_url}, "
        f"management {config.management_url} (keys from {config.key_file})",
        flush=True,
    )
    try:
        gateway.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        gateway.server_close()


if __name__ == "__main__":
    main()
