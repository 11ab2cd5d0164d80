"""
The rows ``session.list`` answers from, per user, kept in memory.

Loaded from the database once per user (and again after ``LIST_CACHE_S``, which bounds how
stale rows changed by *other* processes can be); changes made by this host are applied
directly, so the hot path of ``session.list`` does no database work at all.
"""

from __future__ import annotations

import time
from collections.abc import Coroutine
from typing import Any

from ..singleflight import SingleFlight
from .store import SessionStore

#: A user's rows as loaded: (monotonic load time, rows by session id, oldest first, so a
#: new session is appended rather than the whole dict copied to put it in front).
Rows = tuple[float, dict[str, dict[str, Any]]]


class SessionIndex:
    """Per-user stored session rows (dicts shaped like ``session.list`` entries)."""

    def __init__(self, store: SessionStore, ttl_s: float):
        self.store = store
        self.ttl_s = ttl_s
        self._users: dict[int, Rows] = {}
        #: Changes made while a user's rows are being read, applied on top once they arrive
        #: (the read may or may not have seen them).
        self._loading: dict[int, list[tuple[str, dict[str, Any]]]] = {}
        self._reads: SingleFlight[Rows] = SingleFlight()

    async def rows(self, user_id: int) -> list[dict[str, Any]]:
        """Copies of the user's rows, newest first."""
        cached = self._users.get(user_id)
        if cached is None or time.monotonic() - cached[0] > self.ttl_s:
            # One read per user at a time; concurrent callers share it.
            cached = await self._reads.run(user_id, lambda: self._start_load(user_id))
        return [dict(row) for row in reversed(cached[1].values())]

    def _start_load(self, user_id: int) -> Coroutine[Any, Any, Rows]:
        self._loading[user_id] = []
        return self._load(user_id)

    async def _load(self, user_id: int) -> Rows:
        try:
            loaded_at = time.monotonic()
            rows = await self.store.list_for_user(user_id)
        finally:
            pending = self._loading.pop(user_id, [])
        # The store lists newest first.
        self._users[user_id] = (loaded_at, {row["session_id"]: row for row in reversed(rows)})
        for session_id, fields in pending:
            self.upsert(user_id, session_id, **fields)
        self._evict_expired()
        return self._users[user_id]

    def _evict_expired(self) -> None:
        """Forget users whose rows expired long ago, so the index follows active users."""
        horizon = time.monotonic() - max(self.ttl_s, 1.0) * 10
        for user_id in [uid for uid, (at, _) in self._users.items() if at < horizon]:
            del self._users[user_id]

    def upsert(self, user_id: int, session_id: str, **fields: Any) -> None:
        """Apply a change this host made; a no-op for users not loaded yet."""
        if user_id in self._loading:
            self._loading[user_id].append((session_id, fields))
        cached = self._users.get(user_id)
        if cached is None:
            return
        rows = cached[1]
        if session_id in rows:
            rows[session_id].update(fields)
        else:
            rows[session_id] = {"session_id": session_id, **fields}

    def __len__(self) -> int:
        return len(self._users)
