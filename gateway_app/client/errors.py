"""
Exceptions of the client library: one class per wire error code (``GatewayError`` and its
subclasses, raised by calls) and the connection failures (refused credentials, a lost link).
"""

from __future__ import annotations

from typing import Any

from ..rpc.codes import (  # noqa: F401 - the codes are part of this module's interface
    CLOSE_FORBIDDEN,
    CLOSE_SEND_QUEUE_FULL,
    CLOSE_SERVICE_RESTART,
    CLOSE_TOO_LARGE,
    CLOSE_TOO_MANY_CONNECTIONS,
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


class GatewayError(Exception):
    """A JSON-RPC error response: the wire ``code``, its ``message`` and optional ``data``."""

    code: int = INTERNAL_ERROR

    def __init__(self, message: str, code: int | None = None, data: Any = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.data = data

    def __str__(self) -> str:
        return f"{self.message} (code {self.code})"


class ParseError(GatewayError):
    code = PARSE_ERROR


class InvalidRequest(GatewayError):
    code = INVALID_REQUEST


class MethodNotFound(GatewayError):
    code = METHOD_NOT_FOUND


class InvalidParams(GatewayError):
    """Bad params; ``field`` names the offending one when the gateway said which."""

    code = INVALID_PARAMS

    @property
    def field(self) -> str | None:
        return self.data.get("field") if isinstance(self.data, dict) else None


class InternalError(GatewayError):
    code = INTERNAL_ERROR


class WorkerDraining(InternalError):
    """The worker is restarting (``data.draining``): the same call succeeds on a new connection."""


class SessionNotFound(GatewayError):
    """Unknown session, or one of another user: the gateway does not tell them apart."""

    code = SESSION_NOT_FOUND


class SessionBusy(GatewayError):
    """A turn is already running in the session."""

    code = SESSION_BUSY


class TooLarge(GatewayError):
    code = TOO_LARGE


class RateLimited(GatewayError):
    """Over a rate or quota; ``retry_after`` is the gateway's hint in seconds, if it gave one."""

    code = RATE_LIMITED

    @property
    def retry_after(self) -> float | None:
        value = self.data.get("retry_after_s") if isinstance(self.data, dict) else None
        return float(value) if isinstance(value, int | float) else None


_BY_CODE: dict[int, type[GatewayError]] = {
    cls.code: cls
    for cls in (
        ParseError,
        InvalidRequest,
        MethodNotFound,
        InvalidParams,
        InternalError,
        SessionNotFound,
        SessionBusy,
        TooLarge,
        RateLimited,
    )
}


def error_from_wire(error: Any) -> GatewayError:
    """The exception for a response's ``error`` object (unknown codes: a plain GatewayError)."""
    if not isinstance(error, dict):
        return GatewayError(f"malformed error: {error!r}")
    code = error.get("code")
    message = str(error.get("message", "error"))
    data = error.get("data")
    if code == INTERNAL_ERROR and isinstance(data, dict) and data.get("draining") is True:
        return WorkerDraining(message, data=data)
    if isinstance(code, int) and code in _BY_CODE:
        return _BY_CODE[code](message, data=data)
    return GatewayError(message, code=code if isinstance(code, int) else None, data=data)


class ClientConnectionError(Exception):
    """The client could not reach the gateway, or lost it."""


class ConnectionLost(ClientConnectionError):
    """The link dropped while a call that is not safe to repeat was in flight (or was closed)."""


class ConnectFailed(ClientConnectionError):
    """Every connection attempt failed; ``attempts`` were made, ``__cause__`` is the last error."""

    def __init__(self, message: str, attempts: int):
        super().__init__(message)
        self.attempts = attempts


class AuthenticationFailed(ClientConnectionError):
    """The gateway refused the credentials (HTTP 403 or close code 4003): never retried."""


class ProtocolError(ClientConnectionError):
    """The peer sent something that is not the gateway protocol (no ``gateway.ready`` first)."""
