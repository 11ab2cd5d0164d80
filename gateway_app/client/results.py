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
    """A transcript message: ``role`` is user or assistant (or system)."""

    role: str
    content: str


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
        messages = tuple(
            Message(str(m.get("role", "")), str(m.get("content", "")))
            for m in result.get("messages") or ()
            if isinstance(m, dict)
        )
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
