"""The v2 REST surface (KServe v2 / Triton HTTP) as an ASGI app. Errors are v2's
`{"error": "..."}` with the status that fits (400 bad tensor, 401 no key, 404 unknown model)."""

from contextlib import asynccontextmanager
from typing import Optional

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from imagelab.cancellation import CancelMarkers, InvalidJobId, TooManyMarkers
from oipfront.auth import CallerKey
from oipfront.service import HEADER_LENGTH, OipError, OipService

MODEL = "/v2/models/{model:str}"
VERSIONED = MODEL + "/versions/{version:str}"


def make_http_app(
    service: OipService, caller_key: CallerKey, max_request_bytes: int, cancels: Optional[CancelMarkers] = None
) -> Starlette:
    async def live(request: Request) -> Response:
        return Response(status_code=200)

    async def ready(request: Request) -> Response:
        return Response(status_code=200 if await service.server_ready() else 503)

    async def server_metadata(request: Request) -> Response:
        return JSONResponse(service.server_metadata())

    async def model_ready(request: Request) -> Response:
        ready = await service.model_ready(*_model(request))
        return Response(status_code=200 if ready else 503)

    async def model_metadata(request: Request) -> Response:
        return JSONResponse(await service.model_metadata(*_model(request)))

    async def model_config(request: Request) -> Response:
        return JSONResponse(await service.model_config(*_model(request)))

    async def infer(request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and int(declared) > max_request_bytes:
            raise OipError(413, f"the request is {declared} bytes; the limit is {max_request_bytes} bytes")
        chunks, size = [], 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_request_bytes:
                    raise OipError(413, f"the request is over the limit of {max_request_bytes} bytes")
                chunks.append(chunk)
        except ClientDisconnect:
            raise OipError(400, "the request ended before its body") from None
        answer = await service.infer(*_model(request), b"".join(chunks), request.headers.get(HEADER_LENGTH))
        headers = {} if answer.header_length is None else {HEADER_LENGTH: str(answer.header_length)}
        return Response(answer.body, 200, headers, media_type=answer.content_type)

    async def cancel(request: Request) -> Response:
        """Not v2: imagelab's cancel (README "Cancel"). The busy worker takes no call, so the
        front writes the job's cancel marker, which the running job checks at every step."""
        if cancels is None:
            raise OipError(404, "cancelling is off in this front (no cancel folder)")
        job_id = request.path_params["job_id"]
        try:
            cancels.request(job_id)
        except InvalidJobId as error:
            raise OipError(400, str(error)) from None
        except TooManyMarkers as error:
            raise OipError(503, str(error)) from None
        return JSONResponse({"job_id": job_id, "cancel": "requested"}, 202)

    routes = [
        Route("/v2/cancel/{job_id:str}", cancel, methods=["POST"]),
        Route("/v2/health/live", live),
        Route("/v2/health/ready", ready),
        Route("/v2", server_metadata),
    ]
    for base in (MODEL, VERSIONED):
        routes += [
            Route(base, model_metadata),
            Route(base + "/ready", model_ready),
            Route(base + "/config", model_config),
            Route(base + "/infer", infer, methods=["POST"]),
        ]

    @asynccontextmanager
    async def lifespan(app):
        yield
        await service.torchserve.aclose()

    handlers = {OipError: _oip_error, 404: _not_found, 405: _not_allowed}
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers)
    return RequireKey(app, caller_key)


class RequireKey:
    """ASGI middleware: no call passes without the front's key (auth.py)."""

    def __init__(self, app, caller_key: CallerKey):
        self.app = app
        self.caller_key = caller_key

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and not self.caller_key.allows(Headers(scope=scope).get("authorization")):
            refusal = JSONResponse(
                {"error": "this front needs 'Authorization: Bearer <key>' (the key is in its key file)"},
                401,
                {"WWW-Authenticate": "Bearer"},
            )
            return await refusal(scope, receive, send)
        await self.app(scope, receive, send)


def _model(request: Request) -> tuple:
    version: Optional[str] = request.path_params.get("version") or None
    return request.path_params["model"], version


async def _oip_error(request: Request, error: OipError) -> Response:
    return JSONResponse(error.body(), error.status)


async def _not_found(request: Request, error) -> Response:
    return JSONResponse({"error": f"no such v2 endpoint: {request.url.path[:100]}"}, 404)


async def _not_allowed(request: Request, error) -> Response:
    return JSONResponse({"error": f"{request.method} is not served on {request.url.path[:100]}"}, 405)
