"""
JSON-RPC 2.0 framing for PROTOCOL.md v1: split frames into lines, validate envelopes, build
responses and events. Pure functions, no I/O, shared by the WebSocket and stdio transports.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from .errors import InvalidParams, InvalidRequest, ParseError, RpcError

PROTOCOL_VERSION = 1

RequestId = int | str | None

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")

# The fallback for what orjson refuses: lone surrogates (legal in JSON text, illegal in
# UTF-8; ensure_ascii escapes them) and integers beyond 64 bits.
_encoder = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False)


@dataclass(slots=True)
class Request:
    """A validated request; ``notification`` requests get no response."""

    method: str
    params: dict[str, Any]
    id: RequestId = None
    notification: bool = False


@dataclass(slots=True)
class Rejected:
    """
    A line that failed framing or envelope validation, with the id when readable. A
    ``notification`` (a well-formed envelope without id, refused for its params or the
    rate) is dropped unanswered, as PROTOCOL.md promises no response to any notification.
    """

    error: RpcError
    id: RequestId = None
    notification: bool = False


@dataclass(slots=True)
class Frame:
    """The parsed lines of one client frame, in order."""

    items: list[Request | Rejected] = field(default_factory=list)


def split_lines(text: str) -> list[str]:
    """Split a frame into its non-blank lines, whitespace stripped."""
    return [stripped for line in text.split("\n") if (stripped := line.strip())]


def parse_frame(text: str) -> Frame:
    """Parse every line of a client frame; never raises."""
    return Frame([parse_line(line) for line in split_lines(text)])


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# json accepts NaN, Infinity and -Infinity, which JSON (RFC 8259) does not. One decoder for
# every line: json.loads with an argument would build a new one each call.
_decoder = json.JSONDecoder(parse_constant=_refuse_constant)


def parse_line(line: str) -> Request | Rejected:
    """Decode one line and validate its JSON-RPC request envelope."""
    try:
        message = _decoder.decode(line)
    except (ValueError, RecursionError):
        # ValueError covers JSONDecodeError and over-long integer literals.
        return Rejected(ParseError())
    # A lone surrogate can only arrive as a \\u escape: the frame itself is valid UTF-8.
    if "\\u" in line and _holds_lone_surrogate(message):
        return _refuse_surrogates(message)
    return validate_envelope(message)


def _holds_lone_surrogate(value: Any) -> bool:
    """Whether any key or string in ``value`` holds a lone UTF-16 surrogate (RFC 7493 2.1)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if not item.isascii() and _LONE_SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _refuse_surrogates(message: Any) -> Rejected:
    """Refuse text no UTF-8 store or peer can carry, answering the id when it is readable."""
    error = InvalidRequest(
        "Invalid request: a string holds a lone UTF-16 surrogate, which UTF-8 cannot carry"
    )
    if not isinstance(message, dict):
        return Rejected(error)
    request_id = message.get("id")
    if not _is_valid_id(request_id) or _holds_lone_surrogate(request_id):
        return Rejected(error, notification="id" not in message)
    return Rejected(error, request_id)


def validate_envelope(message: Any) -> Request | Rejected:
    """Validate a decoded message as a single JSON-RPC 2.0 request."""
    if not isinstance(message, dict):
        kind = "batch (array)" if isinstance(message, list) else type(message).__name__
        return Rejected(InvalidRequest(f"Invalid request: expected an object, got {kind}"))
    has_id = "id" in message
    request_id = message.get("id")
    if has_id and not _is_valid_id(request_id):
        return Rejected(InvalidRequest("Invalid request: 'id' must be an integer or a string"))
    if message.get("jsonrpc") != "2.0":
        return Rejected(InvalidRequest("Invalid request: 'jsonrpc' must be \"2.0\""), request_id)
    method = message.get("method")
    if not isinstance(method, str) or not method:
        return Rejected(
            InvalidRequest("Invalid request: 'method' must be a non-empty string"), request_id
        )
    params = message.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        return Rejected(
            InvalidParams("params", "must be an object"), request_id, notification=not has_id
        )
    return Request(method=method, params=params, id=request_id, notification=not has_id)


def _is_valid_id(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


### Outgoing messages ###


def result_message(request_id: RequestId, result: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def error_message(request_id: RequestId, error: RpcError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": error.as_error()}


def event_message(
    event_type: str,
    payload: dict[str, Any],
    session_id: str | None = None,
    seq: int | None = None,
) -> dict[str, Any]:
    params: dict[str, Any] = {"type": event_type}
    if session_id is not None:
        params["session_id"] = session_id
    if seq is not None:
        params["seq"] = seq
    params["payload"] = payload
    return {"jsonrpc": "2.0", "method": "event", "params": params}


def ready_message(skin: dict[str, Any]) -> dict[str, Any]:
    return event_message("gateway.ready", {"skin": skin, "protocol": PROTOCOL_VERSION})


def utf8_length(text: str) -> int:
    """Bytes of ``text`` on the wire; cheap when the answer is obvious from its length."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


def encode(message: dict[str, Any]) -> str:
    """Serialize one outgoing message as a single-line JSON text (UTF-8 characters
    unescaped), with orjson: every response and event goes through here."""
    try:
        return orjson.dumps(message).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return _encoder.encode(message)
