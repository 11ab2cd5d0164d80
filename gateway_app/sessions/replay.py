"""Bounded replay buffer of a session's serialized events, keyed by ``seq``."""

from __future__ import annotations

from collections import deque


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
