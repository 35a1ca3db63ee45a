"""Exceptions keyed by status (API.md, Errors), one family whatever the transport.

Every server error body is `{"code", "type", "message"[, "field"]}`; the exception keeps the
message, field, status and the whole body, so callers can show the server's own words.
"""

import json
from typing import Optional


class ImageLabError(Exception):
    """Base of every error this client raises for a failed call."""

    def __init__(
        self,
        message: str,
        status: Optional[int] = None,
        field: Optional[str] = None,
        type: Optional[str] = None,
        body: Optional[dict] = None,
    ):
        super().__init__(message)
        self.message = message
        self.status = status
        self.field = field
        self.type = type
        self.body = body or {}

    def __str__(self) -> str:
        status = f"{self.status} " if self.status is not None else ""
        return f"{status}{self.message}"


class InvalidInput(ImageLabError):
    """400, 413 or 422: fix the request (the message names the field and what it accepts)."""


class AuthError(ImageLabError):
    """The token was refused (TorchServe says 400 InvalidKeyException, or 401/403)."""


class NotFound(ImageLabError):
    """404: no such model or version."""


class Overloaded(ImageLabError):
    """503: the queue is full or no worker is up; retried with backoff before it is raised."""


class Timeout(ImageLabError):
    """504, or the client's own read timeout ran out."""


class OutOfResources(ImageLabError):
    """507: the server ran out of memory; try a smaller image, fewer steps or later."""


class Cancelled(ImageLabError):
    """499: the job was cancelled (client.cancel, or the CLI's Ctrl-C); `body["job_id"]` names it."""


class ServerError(ImageLabError):
    """Any other 5xx, or an answer this client cannot read."""


class ConnectionFailed(ImageLabError):
    """The server could not be reached at all."""


_BY_STATUS = {
    400: InvalidInput,
    413: InvalidInput,
    422: InvalidInput,
    401: AuthError,
    403: AuthError,
    404: NotFound,
    499: Cancelled,
    503: Overloaded,
    504: Timeout,
    507: OutOfResources,
}
# TorchServe's own exception names, for answers whose status says less than their type.
_BY_TYPE = {
    "InvalidKeyException": AuthError,
    "ModelNotFoundException": NotFound,
    "ModelVersionNotFoundException": NotFound,
    "ServiceUnavailableException": Overloaded,
}


def error_for(status: Optional[int], body: dict, fallback_message: str = "") -> ImageLabError:
    """The exception for a status and a parsed error body."""
    kind = body.get("type")
    message = body.get("message") or body.get("error") or fallback_message or f"HTTP {status}"
    if status is None and isinstance(body.get("code"), int):
        status = body["code"]
    cls = _BY_TYPE.get(kind) or _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status is not None and status >= 500 else ImageLabError
    return cls(str(message), status, body.get("field"), kind, body)


def error_from_text(status: Optional[int], text: str) -> ImageLabError:
    """From a response body that may or may not be the JSON error document."""
    try:
        body = json.loads(text)
    except (ValueError, TypeError):
        body = None
    if not isinstance(body, dict):
        return error_for(status, {}, text.strip()[:500])
    return error_for(status, body)


def is_error_document(document) -> bool:
    """An error body where a result was expected (gRPC Predictions and stream lines carry
    handler errors this way: TorchServe 0.12 answers them with gRPC status OK)."""
    return (
        isinstance(document, dict)
        and "images" not in document
        and (document.get("type") == "error" or isinstance(document.get("code"), int))
        and "message" in document
    )
