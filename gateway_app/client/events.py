"""
Typed events: one frozen dataclass per event type of PROTOCOL.md (``parse_event`` builds them
from a frame's params) and the ``client.*`` events the library itself emits about its link.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

_BASE_FIELDS = frozenset({"type", "session_id", "seq", "payload"})


@dataclass(frozen=True, kw_only=True)
class Event:
    """An event as received: ``type``, its session and ``seq`` (absent for gateway events)."""

    type: str
    session_id: str | None = None
    seq: int | None = None
    payload: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True, kw_only=True)
class GatewayReady(Event):
    type: str = field(default="gateway.ready", init=False)
    skin: dict[str, Any] = field(default_factory=dict)
    protocol: int = 0


@dataclass(frozen=True, kw_only=True)
class MessageStart(Event):
    type: str = field(default="message.start", init=False)
    turn_id: str = ""


@dataclass(frozen=True, kw_only=True)
class MessageDelta(Event):
    type: str = field(default="message.delta", init=False)
    turn_id: str = ""
    text: str = ""


@dataclass(frozen=True, kw_only=True)
class ToolStart(Event):
    type: str = field(default="tool.start", init=False)
    turn_id: str = ""
    tool_id: str = ""
    name: str = ""
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class ToolComplete(Event):
    type: str = field(default="tool.complete", init=False)
    turn_id: str = ""
    tool_id: str = ""
    result: Any = None


@dataclass(frozen=True, kw_only=True)
class ApprovalRequest(Event):
    """The turn waits for ``respond_approval(session_id, request_id, choice)``."""

    type: str = field(default="approval.request", init=False)
    request_id: str = ""
    tool: str = ""
    description: str = ""


@dataclass(frozen=True, kw_only=True)
class ClarifyRequest(Event):
    """The turn waits for ``respond_clarify(session_id, request_id, answer)``."""

    type: str = field(default="clarify.request", init=False)
    request_id: str = ""
    question: str = ""


@dataclass(frozen=True, kw_only=True)
class MessageComplete(Event):
    """The end of a turn: ``text`` is the whole reply (the deltas concatenated);
    ``truncated``: it reached the gateway's MAX_MESSAGE_CHARS and was cut there, marked."""

    type: str = field(default="message.complete", init=False)
    turn_id: str = ""
    text: str = ""
    interrupted: bool = False
    truncated: bool = False


@dataclass(frozen=True, kw_only=True)
class ErrorEvent(Event):
    type: str = field(default="error", init=False)
    message: str = ""


@dataclass(frozen=True, kw_only=True)
class SessionClosed(Event):
    type: str = field(default="session.closed", init=False)
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class Disconnected(Event):
    """The link dropped; the client reconnects (``client.retry`` for each failed attempt)."""

    type: str = field(default="client.disconnected", init=False)
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class RetryScheduled(Event):
    """A connection attempt failed; the next one follows after ``delay`` seconds."""

    type: str = field(default="client.retry", init=False)
    attempt: int = 0
    delay: float = 0.0
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class Reconnected(Event):
    """The link is back and every held session was resumed from its last seen ``seq``."""

    type: str = field(default="client.reconnected", init=False)
    attempts: int = 0
    sessions: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ResumeGap(Event):
    """
    A resume could not replay everything missed (the buffer no longer reached back): the
    transcript ``messages`` are the authority, and a turn that ended meanwhile was reconciled.
    """

    type: str = field(default="client.gap", init=False)
    last_seq: int = 0
    status: str = ""
    messages: tuple[dict[str, Any], ...] = ()


_TYPES: dict[str, type[Event]] = {
    cls.__dataclass_fields__["type"].default: cls
    for cls in (
        GatewayReady,
        MessageStart,
        MessageDelta,
        ToolStart,
        ToolComplete,
        ApprovalRequest,
        ClarifyRequest,
        MessageComplete,
        ErrorEvent,
        SessionClosed,
    )
}
#: Events that belong to the running turn of their session.
TURN_EVENTS = frozenset(
    {
        "message.start",
        "message.delta",
        "tool.start",
        "tool.complete",
        "approval.request",
        "clarify.request",
        "message.complete",
        "error",
    }
)


def parse_event(params: dict[str, Any]) -> Event:
    """The typed event for an event frame's ``params`` (unknown types: a plain ``Event``)."""
    payload = params.get("payload")
    payload = payload if isinstance(payload, dict) else {}
    session_id = params.get("session_id")
    seq = params.get("seq")
    common: dict[str, Any] = {
        "session_id": session_id if isinstance(session_id, str) else None,
        "seq": seq if isinstance(seq, int) else None,
        "payload": payload,
    }
    event_type = str(params.get("type", ""))
    cls = _TYPES.get(event_type)
    if cls is None:
        return Event(type=event_type, **common)
    names = {f.name for f in dataclasses.fields(cls) if f.init} - _BASE_FIELDS
    return cls(**common, **{name: payload[name] for name in names if name in payload})
