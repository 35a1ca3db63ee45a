"""Picks and builds a transport by name. It imports the transports; they import only base.py,
never this module, so the import graph has no circle."""

from typing import Optional

from imagelab_client.transports.base import Transport
from imagelab_client.transports.rest import RestTransport
from imagelab_client.transports.v2 import V2Transport

DEFAULT_URLS = {  # API.md, Server: (inference, management)
    "rest": ("http://127.0.0.1:8080", "http://127.0.0.1:8081"),
    "v2": ("http://127.0.0.1:8080", "http://127.0.0.1:8081"),
    "grpc": ("127.0.0.1:7070", "127.0.0.1:7071"),
}


def make_transport(
    kind: str,
    url: Optional[str],
    management_url: Optional[str],
    credentials,
    connect_timeout_s: float,
    read_timeout_s: float,
    pool_size: int,
) -> Transport:
    if kind not in DEFAULT_URLS:
        raise ValueError(f"transport must be one of {', '.join(DEFAULT_URLS)}; got {kind!r}")
    url = url or DEFAULT_URLS[kind][0]
    management_url = management_url or DEFAULT_URLS[kind][1]
    if kind == "grpc":
        from imagelab_client.transports.grpc_api import GrpcTransport  # the optional `grpc` extra

        return GrpcTransport(url, management_url, credentials, connect_timeout_s, read_timeout_s)
    if kind == "v2":
        return V2Transport(url, management_url, credentials, connect_timeout_s, read_timeout_s, pool_size)
    return RestTransport(url, management_url, credentials, connect_timeout_s, read_timeout_s, pool_size)
