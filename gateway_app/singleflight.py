"""
Single flight: concurrent callers asking for the same thing share one run of the work.

Used where a burst of identical requests would otherwise each hit the database or build the
same state twice: token lookups in a reconnect storm, a user's ``session.list`` rows, the cold
start of one session resumed from two tabs at once.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable, Coroutine, Hashable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """In-flight work by key; a caller arriving while it runs awaits the same result."""

    def __init__(self) -> None:
        self._tasks: dict[Hashable, asyncio.Task[T]] = {}

    async def run(
        self, key: Hashable, start: Callable[[], Coroutine[Any, Any, T]], *, fresh: bool = False
    ) -> T:
        """
        The result of the work for ``key``: ``start()`` is called (synchronously) only when
        none is in flight on this loop. The work runs as a task in a context of its own and is
        shielded, so a caller that is cancelled (its connection went away) neither cancels it
        for the others nor leaves its context to outlive it. ``fresh``: share only work that
        started after this call (wait out older work, then share the next run), so the
        result never predates the caller.
        """
        loop = asyncio.get_running_loop()
        task = self._tasks.get(key)
        if fresh and task is not None and task.get_loop() is loop:
            # Its done callback forgets it before this caller wakes: the next run is new.
            await asyncio.wait({task})
            task = self._tasks.get(key)
        if task is None or task.get_loop() is not loop:
            task = loop.create_task(start(), context=contextvars.Context())
            self._tasks[key] = task
            task.add_done_callback(functools.partial(self._done, key))
        return await asyncio.shield(task)

    def _done(self, key: Hashable, task: asyncio.Task[T]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]
        if not task.cancelled():
            task.exception()  # retrieved: every waiter got it (or none was left to)
