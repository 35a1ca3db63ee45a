"""The gateway's HTTP server: static files for the playground, /api/... forwarded to TorchServe.

Request bodies are read whole (bounded by max_request_bytes) so that a request TorchServe
refuses for a stale key can be sent again after re-reading key_file.json; responses are
copied through as they arrive, so streamed progress (chunked NDJSON) reaches the browser
line by line instead of at the end."""

import http.client
import json
import logging
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from gateway.config import GatewayConfig
from gateway.keys import KeyFile
from gateway.routes import Refusal, Route, route
from gateway.static import find_static

logger = logging.getLogger("gateway")

INFO_PATH = "/api/gateway"
CHUNK_BYTES = 64 * 1024
# How TorchServe says a token is wrong or expired (status 400 or 401 with this type).
STALE_KEY_MARKERS = (b"InvalidKeyException", b"Token Authorization failed")
MAX_ERROR_PEEK_BYTES = 1024 * 1024
# Headers never copied from TorchServe to the browser: hop-by-hop ones (the gateway frames
# its own response) and anything that could carry a credential.
DROPPED_RESPONSE_HEADERS = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "cache-control",
    "pragma",
    "expires",
    "proxy-authenticate",
    "www-authenticate",
    "set-cookie",
    "authorization",
    "upgrade",
}
FORWARDED_REQUEST_HEADERS = ("Content-Type", "Accept")
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # Results are shown as blob: URLs; React sets the progress bar's width as a style attribute.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
}


class Gateway(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, config: GatewayConfig):
        self.config = config
        self.key_file = KeyFile(config.key_file)
        super().__init__((config.host, config.port), GatewayHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def upstream_url(self, upstream: str) -> str:
        return self.config.inference_url if upstream == "inference" else self.config.management_url

    def start_background(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, args=(0.05,), name="gateway", daemon=True)
        thread.start()
        return thread


class UpstreamUnavailable(Exception):
    pass


class GatewayHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked responses
    server_version = "imagelab-gateway"
    sys_version = ""
    server: Gateway

    def do_GET(self):
        self._dispatch()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        logger.info("%s %s", self.address_string(), format % args)

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        refusal = self._check_origin()
        if refusal:
            return self._send_error(*refusal)
        if parts.path == INFO_PATH and self.command == "GET":
            return self._send_json(
                200,
                {
                    "set_default": self.server.config.allow_set_default,
                    "max_request_bytes": self.server.config.max_request_bytes,
                },
            )
        if parts.path == "/api" or parts.path.startswith("/api/"):
            target = route(self.command, parts.path, parts.query, self.server.config.allow_set_default)
            if isinstance(target, Refusal):
                self._discard_body()
                return self._send_error(*target)
            return self._forward(target)
        if self.command not in ("GET", "HEAD"):
            self._discard_body()
            return self._send_error(405, "the playground's files take GET", "GET, HEAD")
        self._send_static(parts.path)

    def _check_origin(self):
        """DNS-rebinding and cross-site guard: the gateway spends a key on every forwarded
        request, so it answers only pages it served itself."""
        host = self.headers.get("Host", "")
        port = self.server.server_address[1]
        allowed = {f"{name}:{port}" for name in ("127.0.0.1", "localhost", "[::1]", self.server.config.host)}
        if host not in allowed:
            return Refusal(403, f"unexpected Host header {host[:100]!r}; open the playground at {self.server.url}")
        origin = self.headers.get("Origin")
        if origin is not None and self.command not in ("GET", "HEAD") and origin != f"http://{host}":
            return Refusal(403, f"cross-origin {self.command} from {origin[:100]!r} refused")
        return None

    # ---- forwarding -------------------------------------------------------------------------

    def _read_body(self):
        """-> bytes, or a Refusal for bodies the gateway will not take."""
        if self.command not in ("POST", "PUT"):
            return None
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            return Refusal(411, "send the request with a Content-Length")
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            self.close_connection = True
            return Refusal(400, "Content-Length must be a number")
        limit = self.server.config.max_request_bytes
        if length < 0 or length > limit:
            self.close_connection = True  # the unread body would be taken as the next request
            return Refusal(413, f"the request is {length} bytes; the limit is {limit} bytes")
        return self.rfile.read(length)

    def _discard_body(self) -> None:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if 0 < length <= CHUNK_BYTES:
            self.rfile.read(length)
        elif length or self.headers.get("Transfer-Encoding"):
            self.close_connection = True

    def _forward(self, target: Route) -> None:
        body = self._read_body()
        if isinstance(body, Refusal):
            return self._send_error(*body)
        try:
            connection, response = self._upstream(target, body, reload_keys=False)
            if response.status in (400, 401):
                peeked = response.read(MAX_ERROR_PEEK_BYTES)
                if any(marker in peeked for marker in STALE_KEY_MARKERS):
                    connection.close()
                    logger.info(
                        "TorchServe refused the key; re-reading %s and retrying once", self.server.key_file.path
                    )
                    connection, response = self._upstream(target, body, reload_keys=True)
                    peeked = b""
            else:
                peeked = b""
        except UpstreamUnavailable as error:
            return self._send_error(502, str(error))
        except (TimeoutError, socket.timeout):
            return self._send_error(504, "TorchServe did not answer in time")
        try:
            self._relay(response, peeked)
        finally:
            connection.close()

    def _upstream(self, target: Route, body, reload_keys: bool):
        config = self.server.config
        try:
            keys = self.server.key_file.keys(reload=reload_keys)
        except (OSError, ValueError) as error:
            raise UpstreamUnavailable(f"cannot read TorchServe's keys from {config.key_file}: {error}") from None
        key = keys.inference if target.upstream == "inference" else keys.management
        base = urlsplit(self.server.upstream_url(target.upstream))
        headers = {name: self.headers[name] for name in FORWARDED_REQUEST_HEADERS if self.headers.get(name)}
        headers["Authorization"] = f"Bearer {key}"
        if body is not None:
            headers["Content-Length"] = str(len(body))
        connection = http.client.HTTPConnection(base.hostname, base.port or 80, timeout=config.upstream_timeout_s)
        try:
            connection.request(self.command, target.path, body=body, headers=headers)
            return connection, connection.getresponse()
        except (TimeoutError, socket.timeout):
            connection.close()
            raise
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            raise UpstreamUnavailable(f"TorchServe at {base.geturl()} is not reachable: {error}") from None

    def _relay(self, response: http.client.HTTPResponse, peeked: bytes) -> None:
        """Copy TorchServe's answer through; chunked (streamed) answers chunk by chunk."""
        self.send_response(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in DROPPED_RESPONSE_HEADERS and name.lower() not in (
                h.lower() for h in SECURITY_HEADERS
            ):
                self.send_header(name, value)
        self.send_header("Cache-Control", "no-store")
        self._send_security_headers()
        known_length = response.length is not None and not response.chunked
        if known_length:
            self.send_header("Content-Length", str(len(peeked) + response.length))
        else:
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("X-Accel-Buffering", "no")
        self.end_headers()
        if self.command == "HEAD":
            return
        try:
            if known_length:
                self.wfile.write(peeked)
                while data := response.read(CHUNK_BYTES):
                    self.wfile.write(data)
            else:
                if peeked:
                    self._write_chunk(peeked)
                while data := response.read1(CHUNK_BYTES):
                    self._write_chunk(data)
                self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            # The browser went away (a cancelled job): stop reading TorchServe's answer.
            self.close_connection = True
            logger.info("client closed the connection during %s %s", self.command, self.path)
        except (OSError, http.client.HTTPException) as error:
            # TorchServe failed mid-answer: the status is already sent, so cut the response
            # short; the browser sees a stream that ends without its result.
            self.close_connection = True
            logger.warning("upstream failed during %s %s: %s", self.command, self.path, error)

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    # ---- local answers ----------------------------------------------------------------------

    def _send_static(self, url_path: str) -> None:
        found = find_static(self.server.config.static_dir, url_path)
        if found is None:
            if not (self.server.config.static_dir / "index.html").is_file():
                return self._send_error(
                    503,
                    f"the playground is not built: run `npm ci && npm run build` in frontend/ "
                    f"(looked in {self.server.config.static_dir})",
                )
            return self._send_error(404, f"no such file: {url_path[:100]}")
        data = found.path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", found.content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", found.cache_control)
        self._send_security_headers()
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _send_security_headers(self) -> None:
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)

    def _send_json(self, status: int, document: dict, extra_headers: dict = None) -> None:
        data = json.dumps(document).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (extra_headers or {}).items():
            self.send_header(name, value)
        self._send_security_headers()
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _send_error(self, status: int, message: str, allow: str = "") -> None:
        """Errors in the server's own shape (API.md): {"code", "type", "message"}."""
        kind = "".join(w.capitalize() for w in HTTPStatus(status).phrase.split())
        self._send_json(status, {"code": status, "type": kind, "message": message}, {"Allow": allow} if allow else None)


def make_gateway(config: GatewayConfig) -> Gateway:
    return Gateway(config)
