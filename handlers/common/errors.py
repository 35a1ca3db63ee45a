"""Typed request errors. Each maps to one status of the error table in API.md, and its message
names the field and what is accepted, so a client can fix the request without reading logs."""

from typing import Optional


class RequestError(Exception):
    """A request the server refuses; never a server fault."""

    status = 400
    type = "InvalidInput"

    def __init__(self, message: str, field: Optional[str] = None):
        super().__init__(message)
        self.message = message
        self.field = field

    def body(self) -> dict:
        body = {"code": self.status, "type": self.type, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return body


class InvalidField(RequestError):
    """A missing or invalid field, an unknown style or class, an undecodable image."""


class TooLarge(RequestError):
    status = 413
    type = "PayloadTooLarge"


class PromptTooLong(RequestError):
    status = 422
    type = "PromptTooLong"


class Overloaded(RequestError):
    status = 503
    type = "ServiceUnavailable"


class DeadlineExceeded(RequestError):
    status = 504
    type = "Timeout"


class OutOfMemory(RequestError):
    status = 507
    type = "OutOfResources"


class ServerFault(RequestError):
    """An unexpected exception in the handler; logged with its trace by the runner."""

    status = 500
    type = "InternalServerError"
