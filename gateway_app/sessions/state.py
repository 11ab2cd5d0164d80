"""The in-memory state of one live session, and its lifecycle phase."""

from __future__ import annotations

import asyncio
import enum
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..conf import setting
from ..models import SessionStatus
from ..rpc.protocol import utf8_length
from .replay import ReplayBuffer

if TYPE_CHECKING:
    from ..slash.client import SlashClient
    from .turn import TurnRunner


class Phase(enum.Enum):
    """Guarded lifecycle: ACTIVE -> CLOSING -> CLOSED, never backwards."""

    ACTIVE = "active"
    CLOSING = "closing"
    CLOSED = "closed"


@dataclass(eq=False, slots=True)
class PendingQuestion:
    """An approval or clarify request waiting for the user's answer."""

    kind: str  # "approval" | "clarify"
    request_id: str
    future: asyncio.Future
    frame: str = ""
    seq: int = 0
    asked_at: float = field(default_factory=time.monotonic)


@dataclass(eq=False, slots=True)
class LiveSession:
    id: str
    user_id: int
    title: str
    created_at: str
    buffer: ReplayBuffer
    seq: int = 0
    #: The bound on seqs stored in the row (``last_seq``): kept ahead of ``seq``.
    seq_bound: int = 0
    epoch: int = 0
    phase: Phase = Phase.ACTIVE
    #: Channel names of the connections attached now.
    attached: set[str] = field(default_factory=set)
    detached_at: float | None = None
    last_activity: float = field(default_factory=time.monotonic)
    turn: TurnRunner | None = None
    pending: dict[str, PendingQuestion] = field(default_factory=dict)
    #: (tool, description) pairs the user approved for the rest of the session.
    approved_tools: set[tuple[str, str]] = field(default_factory=set)
    slash: SlashClient | None = None
    #: Slash commands running now: the session is busy (not reaped) until they end.
    slash_calls: int = 0
    reap_timer: asyncio.TimerHandle | None = None
    skin: str = "default"
    #: The newest messages of the transcript, at most ``HISTORY_LIMIT`` and about
    #: ``HISTORY_BYTES``, ``[{"role", "content", "id"?, "truncated"?}]``, oldest first (the
    #: database keeps them all). ``id`` is the row's, set once the store has written it.
    history: list[dict[str, Any]] = field(default_factory=list)
    #: ``message_bytes`` of ``history``, summed.
    history_bytes: int = 0
    #: Messages in the whole transcript.
    message_count: int = 0
    #: Orders event publication against attach-time replay.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    close_reason: str = ""
    #: Another host took the session over: this copy's transcript and row are not its own.
    given_up: bool = False

    @property
    def group(self) -> str:
        return group_name(self.id)

    @property
    def status(self) -> SessionStatus:
        """The wire status: running, live (attached) or detached."""
        if self.phase is not Phase.ACTIVE:
            return SessionStatus.CLOSED
        if self.turn is not None:
            return SessionStatus.RUNNING
        return SessionStatus.LIVE if self.attached else SessionStatus.DETACHED

    def unattended_questions(self, now: float, timeout: float) -> list[PendingQuestion]:
        """Questions waiting ``timeout`` or longer, all of it with nobody attached to answer."""
        if self.attached or self.detached_at is None or self.phase is not Phase.ACTIVE:
            return []
        return [
            question
            for question in self.pending.values()
            if not question.future.done()
            and now - max(self.detached_at, question.asked_at) >= timeout
        ]

    @property
    def busy(self) -> bool:
        """Running a turn or a slash command, or waiting on the user: never reaped in this
        state."""
        return self.turn is not None or bool(self.pending) or self.slash_calls > 0

    def touch(self) -> None:
        self.last_activity = time.monotonic()

    def remember(self, role: str, content: str, *, truncated: bool = False) -> dict[str, Any]:
        """Add a message to the transcript kept in memory, dropping the oldest beyond it;
        returns its entry (the store gives it its ``id``)."""
        entry: dict[str, Any] = {"role": role, "content": content}
        if truncated:
            entry["truncated"] = True
        self.history.append(entry)
        self.history_bytes += message_bytes(entry)
        self.message_count += 1
        self.trim_history()
        return entry

    def set_history(self, messages: list[dict[str, Any]], count: int) -> None:
        """Start from stored messages (oldest first) of a transcript of ``count`` messages."""
        self.history = messages
        self.history_bytes = sum(message_bytes(m) for m in messages)
        self.message_count = count
        self.trim_history()

    def clear_history(self) -> None:
        self.history.clear()
        self.history_bytes = 0
        self.message_count = 0

    def trim_history(self) -> None:
        """Drop the oldest messages beyond ``HISTORY_LIMIT`` or ``HISTORY_BYTES``; the newest
        one stays whatever its size: it is the agent's latest context."""
        limit, budget = setting("HISTORY_LIMIT"), setting("HISTORY_BYTES")
        drop = 0
        kept = len(self.history)
        while kept - drop > 1 and (kept - drop > limit or self.history_bytes > budget):
            self.history_bytes -= message_bytes(self.history[drop])
            drop += 1
        if drop:
            del self.history[:drop]


#: Session ids are 32 lowercase hex digits (``models.new_session_id``).
SESSION_ID = re.compile(r"^[0-9a-f]{32}$")
#: A session event for the connections in its group (``{"frame": <encoded event>,
#: "session_id": ..., "user_id": <its owner>}``).
EVENT_MESSAGE = "session.event"


@dataclass(frozen=True, slots=True)
class SessionCounts:
    """What a host's live sessions add up to, counted in one place for the admin's live page,
    its charts and /metrics, so the three cannot disagree."""

    by_status: dict[str, int]
    running_turns: int
    pending_questions: int
    pending_reaps: int
    slash_workers: int

    @classmethod
    def of(cls, sessions: Iterable[LiveSession]) -> SessionCounts:
        by_status: dict[str, int] = {}
        running = questions = reaps = slash = 0
        for session in sessions:
            by_status[session.status] = by_status.get(session.status, 0) + 1
            running += session.turn is not None
            questions += len(session.pending)
            reaps += session.reap_timer is not None
            slash += session.slash is not None and session.slash.alive
        return cls(by_status, running, questions, reaps, slash)


def event_message_for(session_id: str, user_id: int, frame: str) -> dict[str, Any]:
    """The layer message carrying one encoded event of a session (owned by ``user_id``)."""
    return {"type": EVENT_MESSAGE, "frame": frame, "session_id": session_id, "user_id": user_id}


def delivers_to(message: dict[str, Any], user_id: int) -> bool:
    """
    Whether a connection of ``user_id`` passes an event message on: only its own sessions'.
    Group membership in Redis is not signed, so a channel a Redis client added to another
    user's session group must not show that session's events.
    """
    owner = message.get("user_id")
    return owner is None or owner == user_id


def group_name(session_id: str) -> str:
    """The channel-layer group every connection attached to the session joins."""
    return f"session.{session_id}"


#: Bytes counted per message besides its content (keys, quotes, escapes of a typical one).
_MESSAGE_OVERHEAD = 40
_CUT_MARK = "[...] "


def message_bytes(message: dict[str, Any]) -> int:
    """About the bytes of a transcript message as JSON on the wire."""
    return utf8_length(message["content"]) + _MESSAGE_OVERHEAD


def recent_messages(history: list[dict[str, Any]], budget: int) -> tuple[list[dict[str, Any]], int]:
    """
    The newest messages of a transcript whose JSON fits in about ``budget`` bytes, oldest
    first, and how many older ones were left out. A newest message too large on its own is
    cut to its end, marked by a leading ``[...]``.
    """
    picked: list[dict[str, Any]] = []
    used = 0
    for message in reversed(history):
        content = message["content"]
        size = message_bytes(message)
        if used + size > budget:
            if not picked:
                keep = max(budget - _MESSAGE_OVERHEAD, 0) // 4  # 4 bytes per char at most
                tail = content[len(content) - keep :]
                picked.append(wire_message(message, _CUT_MARK + tail))
            break
        picked.append(wire_message(message, content))
        used += size
    picked.reverse()
    return picked, len(history) - len(picked)


def wire_message(message: dict[str, Any], content: str) -> dict[str, Any]:
    """A transcript message as ``session.resume`` and ``session.history`` send it: its id
    (null while the store has not written it), role and content, and ``truncated`` if cut."""
    wire = {"id": message.get("id"), "role": message["role"], "content": content}
    if message.get("truncated"):
        wire["truncated"] = True
    return wire
