"""Bounded replay buffer of a session's serialized events, keyed by ``seq``."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .state import LiveSession


class ReplayBuffer:
    """Keeps the most recent events within both an event-count and a byte budget."""

    def __init__(self, max_events: int, max_bytes: int):
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._events: deque[tuple[int, str]] = deque()
        self._bytes = 0
        #: Highest seq ever dropped from the front (0: nothing dropped yet).
        self.dropped_through = 0

    def append(self, seq: int, frame: str) -> None:
        self._events.append((seq, frame))
        self._bytes += len(frame)
        while self._events and (
            len(self._events) > self.max_events or self._bytes > self.max_bytes
        ):
            old_seq, old_frame = self._events.popleft()
            self._bytes -= len(old_frame)
            self.dropped_through = old_seq

    def since(self, last_seq: int) -> tuple[list[str], bool]:
        """Frames with ``seq > last_seq`` in order, and whether some were already dropped."""
        gap = last_seq < self.dropped_through
        return [frame for seq, frame in self._events if seq > last_seq], gap

    def __len__(self) -> int:
        return len(self._events)


def running_turn(session: LiveSession, since: int) -> dict[str, Any] | None:
    """
    The running turn's text up to the newest dropped event, when a replay after ``since``
    needs it: the turn's ``message.start`` fell out of the buffer and so did events the
    client has not seen. The replayed events then all come after its ``seq``.
    """
    turn = session.turn
    through = session.buffer.dropped_through
    if turn is None or not turn.start_seq or turn.start_seq > through or since >= through:
        return None
    return {"turn_id": turn.turn_id, "text": turn.text_through(through), "seq": through}
