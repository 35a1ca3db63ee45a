"""The gateway as an ASGI app: static files for the playground, /api/... forwarded to TorchServe.

Connection handling, request framing, keep-alive and chunked responses are uvicorn's (h11):
a refused request's body is read as that request's body, never as the next request. Routing
looks at the raw path, so an escaped name (fast%5Fstyle) is not taken for another."""

import logging
from contextlib import asynccontextmanager
from http import HTTPStatus

import httpx
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route as StarletteRoute

from gateway.config import GatewayConfig
from gateway.guard import refuse_foreign
from gateway.keys import KeyFile
from gateway.routes import Cancel, Refusal, Route, route
from gateway.static import find_static
from gateway.upstream import TorchServeClient, UpstreamAnswer, UpstreamError
from imagelab.cancellation import CancelMarkers, TooManyMarkers, cancel_dir

logger = logging.getLogger("gateway")

INFO_PATH = "/api/gateway"
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
# Headers never copied from TorchServe to the browser: hop-by-hop ones (uvicorn frames its own
# response) and anything that could carry a credential.
DROPPED_RESPONSE_HEADERS = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "cache-control",
    "pragma",
    "expires",
    "proxy-authenticate",
    "www-authenticate",
    "set-cookie",
    "authorization",
    "upgrade",
    "date",
    "server",
}
FORWARDED_REQUEST_HEADERS = ("content-type", "accept")
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # Results are shown as blob: URLs; React sets the progress bar's width as a style attribute.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
}


def error_response(status: int, message: str, allow: str = "", close: bool = False) -> JSONResponse:
    """Errors in the server's own shape (API.md): {"code", "type", "message"}."""
    kind = "".join(w.capitalize() for w in HTTPStatus(status).phrase.split())
    headers = {"Cache-Control": "no-store", **SECURITY_HEADERS}
    if allow:
        headers["Allow"] = allow
    if close:
        headers["Connection"] = "close"  # what is left of the body is not worth reading
    return JSONResponse({"code": status, "type": kind, "message": message}, status, headers)


async def read_body(request: Request, limit: int) -> "bytes | Refusal":
    declared = request.headers.get("content-length")
    if declared is not None and int(declared) > limit:  # h11 has checked it is a number
        return Refusal(413, f"the request is {declared} bytes; the limit is {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return Refusal(413, f"the request is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class Gateway:
    def __init__(self, config: GatewayConfig):
        self.config = config
        self.torchserve = TorchServeClient(
            config.inference_url, config.management_url, KeyFile(config.key_file), config.upstream_timeout_s
        )
        # $IMAGELAB_CANCEL_DIR, else beside TorchServe's key file: where its workers look.
        self.cancels = CancelMarkers(cancel_dir(config.key_file.parent))

    async def dispatch(self, request: Request) -> Response:
        path = request.scope["raw_path"].decode("latin-1").split("?", 1)[0]
        port = request.scope["server"][1]
        if "transfer-encoding" in request.headers and "content-length" in request.headers:
            # Framed two ways: a proxy in front may have read it the other way (RFC 9112 6.1).
            return error_response(400, "send Content-Length or Transfer-Encoding, not both", close=True)
        refusal = refuse_foreign(request.method, request.headers, port, [self.config.host])
        if refusal:
            return error_response(*refusal)
        if path == INFO_PATH and request.method == "GET":
            return JSONResponse(
                {"set_default": self.config.allow_set_default, "max_request_bytes": self.config.max_request_bytes},
                headers={"Cache-Control": "no-store", **SECURITY_HEADERS},
            )
        if path == "/api" or path.startswith("/api/"):
            target = route(request.method, path, request.url.query, self.config.allow_set_default)
            if isinstance(target, Refusal):
                return error_response(*target)
            if isinstance(target, Cancel):
                return self.cancel(target.job_id)
            return await self.forward(request, target)
        if request.method not in ("GET", "HEAD"):
            return error_response(405, "the playground's files take GET", "GET, HEAD")
        return self.static(path)

    async def forward(self, request: Request, target: Route) -> Response:
        body = None
        if request.method in ("POST", "PUT"):
            try:
                body = await read_body(request, self.config.max_request_bytes)
            except ClientDisconnect:
                return error_response(400, "the request ended before its body", close=True)
            if isinstance(body, Refusal):
                return error_response(*body, close=True)
        headers = {name: request.headers[name] for name in FORWARDED_REQUEST_HEADERS if request.headers.get(name)}
        try:
            answer = await self.torchserve.send(target.upstream, request.method, target.path, body, headers)
        except UpstreamError as error:
            return error_response(error.status, str(error))
        return relay(answer, request)

    def cancel(self, job_id: str) -> Response:
        """POST /api/cancel/{job_id}, behind the same guard as every POST: the marker the
        running job checks at its next step (README "Cancel")."""
        try:
            self.cancels.request(job_id)
        except TooManyMarkers as error:
            return error_response(503, str(error))
        except OSError:
            logger.exception("could not write the cancel marker in %s", self.cancels.directory)
            return error_response(500, "could not record the cancel request")
        headers = {"Cache-Control": "no-store", **SECURITY_HEADERS}
        return JSONResponse({"job_id": job_id, "cancel": "requested"}, 202, headers)

    def static(self, url_path: str) -> Response:
        found = find_static(self.config.static_dir, url_path)
        if found is None:
            if not (self.config.static_dir / "index.html").is_file():
                return error_response(503, "the playground is not built: run `npm ci && npm run build` in frontend/")
            return error_response(404, f"no such file: {url_path[:100]}")
        headers = {"Cache-Control": found.cache_control, **SECURITY_HEADERS}
        return FileResponse(found.path, media_type=found.content_type, headers=headers)


def relay(answer: UpstreamAnswer, request: Request) -> StreamingResponse:
    """TorchServe's answer as it arrives; chunked (streamed progress) stays chunked."""
    security = {name.lower() for name in SECURITY_HEADERS}
    headers = {
        name: value
        for name, value in answer.response.headers.multi_items()
        if name.lower() not in DROPPED_RESPONSE_HEADERS and name.lower() not in security
    }
    headers.update({"Cache-Control": "no-store", **SECURITY_HEADERS})
    if "content-length" not in headers:
        headers["X-Accel-Buffering"] = "no"
    return StreamingResponse(_copy(answer, request), answer.status, headers)


async def _copy(answer: UpstreamAnswer, request: Request):
    try:
        async for chunk in answer.body():
            yield chunk
    except httpx.HTTPError as error:
        # TorchServe failed mid-answer: the status is already sent, so the response is cut
        # short; the browser sees a stream that ends without its result.
        logger.warning("upstream failed during %s %s: %s", request.method, request.url.path, error)
    finally:
        await answer.aclose()  # also when the browser went away (a cancelled job)


def make_app(config: GatewayConfig) -> Starlette:
    gateway = Gateway(config)

    @asynccontextmanager
    async def lifespan(app):
        yield
        await gateway.torchserve.aclose()

    return Starlette(routes=[StarletteRoute("/{path:path}", gateway.dispatch, methods=METHODS)], lifespan=lifespan)
