"""
The first page of ``session.list`` per user, kept in memory.

Holds a user's newest ``MAX_LIMIT`` rows, loaded from the database once (and again after
``LIST_CACHE_S``, which bounds how stale rows changed by *other* processes can be); changes
made by this host are applied directly, so the common call (first page, no filters) does no
database work. Later pages and filtered lists read the database (one indexed page each).
"""

from __future__ import annotations

import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from ..singleflight import SingleFlight
from .listing import MAX_LIMIT, sort_key
from .store import SessionStore


@dataclass(slots=True)
class Window:
    """A user's newest rows as loaded: load time, rows by session id, and whether the
    database holds older rows beyond them."""

    loaded_at: float
    rows: dict[str, dict[str, Any]]
    more: bool
    #: ``rows`` newest activity first, kept until a change can reorder them.
    ordered: list[dict[str, Any]] | None = None

    def in_order(self) -> list[dict[str, Any]]:
        if self.ordered is None:
            self.ordered = sorted(self.rows.values(), key=sort_key, reverse=True)
        return self.ordered


class SessionIndex:
    """Per-user newest stored session rows (dicts shaped like ``session.list`` entries)."""

    def __init__(self, store: SessionStore, ttl_s: float, size: int = MAX_LIMIT):
        self.store = store
        self.ttl_s = ttl_s
        self.size = size
        self._users: dict[int, Window] = {}
        #: Changes made while a user's rows are being read, applied on top once they arrive
        #: (the read may or may not have seen them).
        self._loading: dict[int, list[tuple[str, dict[str, Any]]]] = {}
        self._reads: SingleFlight[Window] = SingleFlight()

    async def page(self, user_id: int, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """Copies of the user's newest ``limit`` rows (at most ``size``), newest activity
        first, and whether more follow."""
        if self.ttl_s <= 0:
            # Nothing is kept (beside other workers, or LIST_CACHE_S = 0): read just the page
            # asked for, not a whole window of ``size`` rows each call.
            return await self.store.list_page(user_id, min(limit, self.size))
        window = self._users.get(user_id)
        if window is None or time.monotonic() - window.loaded_at > self.ttl_s:
            # One read per user at a time; concurrent callers share it.
            window = await self._reads.run(user_id, lambda: self._start_load(user_id))
        ordered = window.in_order()
        more = window.more or len(ordered) > limit
        return [dict(row) for row in ordered[:limit]], more

    async def rows(self, user_id: int) -> list[dict[str, Any]]:
        """Copies of all the rows held for the user, newest activity first."""
        return (await self.page(user_id, self.size))[0]

    def _start_load(self, user_id: int) -> Coroutine[Any, Any, Window]:
        self._loading[user_id] = []
        return self._load(user_id)

    async def _load(self, user_id: int) -> Window:
        try:
            loaded_at = time.monotonic()
            rows, more = await self.store.list_page(user_id, self.size)
        finally:
            pending = self._loading.pop(user_id, [])
        window = Window(loaded_at, {row["session_id"]: row for row in rows}, more)
        self._users[user_id] = window
        for session_id, fields in pending:
            self._apply(window, session_id, fields)
        self._evict_expired()
        # A pending change to a row outside the window dropped it; this read still answers.
        return window

    def _evict_expired(self) -> None:
        """Forget users whose rows expired long ago, so the index follows active users."""
        horizon = time.monotonic() - max(self.ttl_s, 1.0) * 10
        for user_id in [uid for uid, w in self._users.items() if w.loaded_at < horizon]:
            del self._users[user_id]

    def forget(self, user_id: int) -> None:
        """Drop the user's rows (some were deleted): the next page reads them again."""
        window = self._users.get(user_id)
        if window is not None:
            window.loaded_at = float("-inf")

    def upsert(self, user_id: int, session_id: str, **fields: Any) -> None:
        """Apply a change this host made; a no-op for users not loaded yet."""
        if user_id in self._loading:
            self._loading[user_id].append((session_id, fields))
        window = self._users.get(user_id)
        if window is not None:
            self._apply(window, session_id, fields)

    def _apply(self, window: Window, session_id: str, fields: dict[str, Any]) -> None:
        rows = window.rows
        if session_id in rows:
            rows[session_id].update(fields)
            if "last_activity" in fields:
                window.ordered = None
        elif "created_at" in fields and "last_activity" in fields:
            # A new session: the newest row, so the window's oldest may have to go.
            rows[session_id] = {"session_id": session_id, **fields}
            window.ordered = None
            if len(rows) > self.size:
                del rows[min(rows.values(), key=sort_key)["session_id"]]
                window.more = True
        else:
            # A row outside the window changed (a cold start, a close): it may now belong
            # in front, and its other fields are not known here, so read the window again.
            window.loaded_at = float("-inf")

    def __len__(self) -> int:
        return len(self._users)
