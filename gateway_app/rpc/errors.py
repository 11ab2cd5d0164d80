"""
Wire errors. Each class carries its JSON-RPC code; handlers raise them freely and the one
dispatch boundary turns them into error responses.
"""

from __future__ import annotations

from typing import Any

from .codes import (  # noqa: F401 - the codes are part of this module's interface
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    RATE_LIMITED,
    SESSION_BUSY,
    SESSION_NOT_FOUND,
    TOO_LARGE,
)


class RpcError(Exception):
    """An error that is answered to the client as a JSON-RPC error object."""

    code: int = INTERNAL_ERROR
    default_message: str = "Internal error"

    def __init__(self, message: str | None = None, data: dict[str, Any] | None = None):
        self.message = message or self.default_message
        self.data = data
        super().__init__(self.message)

    def as_error(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


class ParseError(RpcError):
    code = PARSE_ERROR
    default_message = "Parse error: line is not valid JSON"


class InvalidRequest(RpcError):
    code = INVALID_REQUEST
    default_message = "Invalid request"


class MethodNotFound(RpcError):
    code = METHOD_NOT_FOUND
    default_message = "Method not found"


class InvalidParams(RpcError):
    """Bad params; the message always names the offending field."""

    code = INVALID_PARAMS

    def __init__(self, field: str, problem: str):
        super().__init__(f"Invalid params: '{field}' {problem}", {"field": field})


class InternalError(RpcError):
    code = INTERNAL_ERROR


class WorkerDraining(InternalError):
    """This worker is restarting (draining): the client's next connection lands elsewhere."""

    default_message = "This worker is restarting: reconnect and retry"

    def __init__(self, message: str | None = None):
        # ``data.draining`` tells clients this -32603 is worth retrying on their next connection.
        super().__init__(message, {"draining": True})


class SessionNotFound(RpcError):
    """Unknown session, or one owned by another user: the two are indistinguishable."""

    code = SESSION_NOT_FOUND
    default_message = "Session not found"


class SessionBusy(RpcError):
    code = SESSION_BUSY
    default_message = "Session busy: a turn is already running"


class TooLarge(RpcError):
    code = TOO_LARGE
    default_message = "Message too large"


class RateLimited(RpcError):
    code = RATE_LIMITED
    default_message = "Rate limit exceeded"


class LayerUnavailable(InternalError):
    """The channel layer (Redis) cannot be reached; the request may be retried."""

    default_message = "Channel layer unavailable (is Redis up?); retry shortly"
