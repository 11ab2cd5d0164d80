"""Typed results of the gateway's methods, built from the response's ``result`` object."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SessionInfo:
    """A session just created (``session.create``)."""

    session_id: str
    title: str
    created_at: str

    @classmethod
    def from_wire(cls, result: dict[str, Any]) -> SessionInfo:
        return cls(result["session_id"], result.get("title", ""), result.get("created_at", ""))


@dataclass(frozen=True)
class SessionSummary:
    """One row of ``session.list``: ``status`` is live, running, detached or closed."""

    session_id: str
    title: str
    status: str
    attached: bool
    created_at: str
    last_activity: str
    messages: int

    @classmethod
    def from_wire(cls, row: dict[str, Any]) -> SessionSummary:
        return cls(
            row["session_id"],
            row.get("title", ""),
            row.get("status", ""),
            bool(row.get("attached")),
            row.get("created_at", ""),
            row.get("last_activity", ""),
            int(row.get("messages") or 0),
        )


class SessionPage(list[SessionSummary]):
    """A page of ``session.list`` rows; ``next_cursor`` continues it (``None``: the last
    page, or a v1 server that does not page)."""

    def __init__(self, rows: list[SessionSummary], next_cursor: str | None = None):
        super().__init__(rows)
        self.next_cursor = next_cursor

    @classmethod
    def from_wire(cls, result: dict[str, Any]) -> SessionPage:
        rows = [SessionSummary.from_wire(row) for row in result.get("sessions", ())]
        return cls(rows, result.get("next_cursor"))


@dataclass(frozen=True)
class Message:
    """A transcript message: ``role`` is user, assistant or tool. ``id`` (beyond v1) is what
    ``Gateway.history`` pages back from; ``truncated``: cut at the gateway's MAX_MESSAGE_CHARS."""

    role: str
    content: str
    id: int | None = None
    truncated: bool = False

    @classmethod
    def from_wire(cls, message: dict[str, Any]) -> Message:
        pk = message.get("id")
        return cls(
            str(message.get("role", "")),
            str(message.get("content", "")),
            pk if isinstance(pk, int) and not isinstance(pk, bool) else None,
            message.get("truncated") is True,
        )


def _messages(items: Any) -> tuple[Message, ...]:
    return tuple(Message.from_wire(m) for m in items or () if isinstance(m, dict))


@dataclass(frozen=True)
class HistoryPage:
    """A page of ``session.history``: older messages, oldest first; pass ``next_before`` as
    ``before`` for the page before it (``None``: this page reaches the first message)."""

    messages: tuple[Message, ...]
    has_more: bool
    next_before: int | None

    @classmethod
    def from_wire(cls, result: dict[str, Any]) -> HistoryPage:
        before = result.get("next_before")
        return cls(
            _messages(result.get("messages")),
            bool(result.get("has_more")),
            before if isinstance(before, int) and not isinstance(before, bool) else None,
        )


@dataclass(frozen=True)
class Resumed:
    """
    ``session.resume``'s answer: the transcript, how many events were replayed, and (beyond
    v1) the session's ``last_seq``, whether events were lost (``gap``) and messages ``omitted``.
    """

    session_id: str
    status: str
    messages: tuple[Message, ...]
    replayed: int
    title: str = ""
    last_seq: int | None = None
    gap: bool = False
    omitted: int = 0

    @classmethod
    def from_wire(cls, result: dict[str, Any]) -> Resumed:
        messages = _messages(result.get("messages"))
        last_seq = result.get("last_seq")
        return cls(
            result["session_id"],
            result.get("status", ""),
            messages,
            int(result.get("replayed") or 0),
            result.get("title", ""),
            last_seq if isinstance(last_seq, int) else None,
            bool(result.get("gap")),
            int(result.get("omitted") or 0),
        )


@dataclass(frozen=True)
class Command:
    """A slash command of ``commands.catalog``."""

    name: str
    description: str
    usage: str
