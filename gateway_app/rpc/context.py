"""
What a method handler sees: the caller and its connection, never the transport itself.
Events reach the connection through its channel (and the session groups it joins).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated user behind a connection, detached from the ORM."""

    user_id: int
    username: str
    is_staff: bool = False


@dataclass(slots=True)
class CallContext:
    """One client connection: identity, channel name, attached sessions and counters."""

    caller: Caller
    channel_name: str
    transport: str = "websocket"
    peer: str = ""
    attached: set[str] = field(default_factory=set)
    counters: Counter = field(default_factory=Counter)
    #: The API token the connection authenticated with, if any.
    token_id: int | None = None

    @property
    def user_id(self) -> int:
        return self.caller.user_id

    def count(self, name: str, amount: int = 1) -> None:
        self.counters[name] += amount


#: Counters every connection reports in its close log line, in this order.
CLOSE_COUNTERS = (
    "messages",
    "parse_errors",
    "dispatch_crashes",
    "send_failures",
    "detached_sessions",
    "reaped",
)


def close_summary(ctx: CallContext) -> str:
    """The one structured log line written when a connection closes."""
    parts = [
        f"transport={ctx.transport}",
        f"user={ctx.caller.username}",
        f"peer={ctx.peer or '-'}",
    ]
    parts += [f"{name}={ctx.counters.get(name, 0)}" for name in CLOSE_COUNTERS]
    return "connection closed " + " ".join(parts)
