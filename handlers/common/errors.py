"""Typed errors, in two families. Each maps to one status of the error table in API.md.

`RequestError` (4xx) is the client's fault: its message names the field and what is accepted,
so a client can fix the request without reading logs. `ServerError` (5xx) is the server's: a
valid request it could not serve (busy, out of time, out of memory, a bug); retrying later or
smaller may work, and the metrics count it apart from refused requests. `ClientClosed` (499)
is neither: the client itself ended the request (a cancelled job), counted apart from both.
"""

from typing import Optional

MAX_MESSAGE_CHARS = 4000  # room for a list of every accepted value (animals has 100 classes)
MAX_FIELD_CHARS = 200


def _clipped(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ServiceError(Exception):
    """What both families share: a status, a type, a message and the JSON body of API.md."""

    status = 500
    type = "InternalServerError"

    def __init__(self, message: str, field: Optional[str] = None):
        super().__init__(message)
        self.message = message
        self.field = field

    def body(self) -> dict:
        """The JSON error body. What a client sent (an unknown field's name) is echoed only
        in part: a 100,000-character key must not come back twice as large."""
        body = {"code": self.status, "type": self.type, "message": _clipped(self.message, MAX_MESSAGE_CHARS)}
        if self.field is not None:
            body["field"] = _clipped(self.field, MAX_FIELD_CHARS)
        return body

    def headers(self) -> dict:
        """Extra response headers (Retry-After for a 503)."""
        return {}


class RequestError(ServiceError):
    """A request the server refuses because of what the client sent (4xx); never a server fault."""

    status = 400
    type = "InvalidInput"


class ServerError(ServiceError):
    """A valid request the server could not serve (5xx); never the client's fault."""


class ClientClosed(ServiceError):
    """The client ended the request itself (nginx's 499 "client closed request"): neither a
    refused request nor a server fault, and counted apart from both."""

    status = 499
    type = "ClientClosed"


class Cancelled(ClientClosed):
    """The client cancelled the running job by its job id (imagelab/cancellation.py)."""

    type = "Cancelled"

    def __init__(self, message: str, job_id: Optional[str] = None):
        super().__init__(message)
        self.job_id = job_id

    def body(self) -> dict:
        body = super().body()
        if self.job_id is not None:
            body["job_id"] = self.job_id
        return body


class InvalidField(RequestError):
    """A missing or invalid field, an unknown style or class, an undecodable image."""


class TooLarge(RequestError):
    status = 413
    type = "PayloadTooLarge"


class PromptTooLong(RequestError):
    status = 422
    type = "PromptTooLong"


class Overloaded(ServerError):
    """Busy: the batch's remaining time cannot hold this request; retry after `retry_after_s`."""

    status = 503
    type = "ServiceUnavailable"

    def __init__(self, message: str, field: Optional[str] = None, retry_after_s: Optional[int] = None):
        super().__init__(message, field)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict:
        return {} if self.retry_after_s is None else {"Retry-After": str(int(self.retry_after_s))}


class TooExpensive(RequestError):
    """The worker's own estimate of the request's time exceeds its budget (imagelab.cost);
    refused before any work, with what would fit."""

    status = 422
    type = "TooExpensive"

    def __init__(self, message: str, field: Optional[str], estimated_s: float, budget_s: float, fits: list):
        super().__init__(message, field)
        self.estimated_s = estimated_s
        self.budget_s = budget_s
        self.fits = fits  # [{"changes": {field: value}, "estimated_s": s}, ...]

    def body(self) -> dict:
        return {
            **super().body(),
            "estimated_s": round(self.estimated_s, 1),
            "budget_s": self.budget_s,
            "fits": self.fits,
        }


class DeadlineExceeded(ServerError):
    """The request started but outlived its time budget."""

    status = 504
    type = "Timeout"


class OutOfMemory(ServerError):
    status = 507
    type = "OutOfResources"


class ServerFault(ServerError):
    """An unexpected exception in the handler; logged with its trace by the runner."""

    status = 500
    type = "InternalServerError"
