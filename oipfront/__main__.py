"""python -m oipfront [--http-port 8000] [--grpc-port 8001] [--inference URL] [--management URL]
[--key-file var/serve/key_file.json] [--caller-key-file var/serve/oip_key.json]"""

import argparse
import asyncio
import logging
from pathlib import Path

import grpc

from gateway.keys import KeyFile
from gateway.server import AsgiServer
from gateway.upstream import TorchServeClient
from imagelab.cancellation import CancelMarkers
from oipfront import grpc_stubs
from oipfront.auth import CallerKey
from oipfront.config import FrontConfig
from oipfront.grpc_service import InferenceServicer, add_servicer
from oipfront.http_app import make_http_app
from oipfront.service import OipService

logger = logging.getLogger("oipfront")


def parse_args(argv=None) -> FrontConfig:
    defaults = FrontConfig()
    parser = argparse.ArgumentParser(prog="python -m oipfront", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default=defaults.host)
    parser.add_argument("--http-port", type=int, default=defaults.http_port)
    parser.add_argument("--grpc-port", type=int, default=defaults.grpc_port)
    parser.add_argument("--inference", default=defaults.inference_url, help="TorchServe inference URL")
    parser.add_argument("--management", default=defaults.management_url, help="TorchServe management URL")
    parser.add_argument("--key-file", type=Path, default=defaults.key_file, help="TorchServe's key_file.json")
    parser.add_argument(
        "--caller-key-file", type=Path, default=defaults.caller_key_file, help="where the front writes its own key"
    )
    parser.add_argument("--keep-caller-key", action="store_true", help="reuse the key already in that file")
    parser.add_argument("--max-request-bytes", type=int, default=defaults.max_request_bytes)
    args = parser.parse_args(argv)
    try:
        return FrontConfig(
            inference_url=args.inference,
            management_url=args.management,
            key_file=args.key_file,
            caller_key_file=args.caller_key_file,
            keep_caller_key=args.keep_caller_key,
            host=args.host,
            http_port=args.http_port,
            grpc_port=args.grpc_port,
            max_request_bytes=args.max_request_bytes,
        )
    except ValueError as error:
        parser.error(str(error))


async def serve(config: FrontConfig) -> None:
    stubs = grpc_stubs.load()
    caller_key = CallerKey.issue(config.caller_key_file, keep=config.keep_caller_key)
    torchserve = TorchServeClient(
        config.inference_url, config.management_url, KeyFile(config.key_file), config.upstream_timeout_s
    )
    service = OipService(torchserve)
    http = AsgiServer(
        make_http_app(service, caller_key, config.max_request_bytes, CancelMarkers(config.cancel_dir)),
        config.host,
        config.http_port,
        "oip",
    )
    limits = [
        ("grpc.max_receive_message_length", config.max_request_bytes),
        ("grpc.max_send_message_length", config.max_request_bytes),
    ]
    rpc = grpc.aio.server(options=limits)
    add_servicer(rpc, InferenceServicer(service, caller_key, stubs), stubs)
    grpc_port = rpc.add_insecure_port(f"{config.host}:{config.grpc_port}")
    await rpc.start()
    print(
        f"Open Inference Protocol front: REST {http.url}, gRPC {config.host}:{grpc_port} -> TorchServe "
        f"{config.inference_url}; callers' key in {config.caller_key_file}; cancel markers in {config.cancel_dir}",
        flush=True,
    )
    try:
        await http.serve()
    finally:
        await rpc.stop(grace=2)
        http.server_close()


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        asyncio.run(serve(parse_args(argv)))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
