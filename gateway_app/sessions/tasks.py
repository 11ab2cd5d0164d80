"""The tasks a session host runs in the background, so none is lost and each failure is logged."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterator
from typing import Any

logger = logging.getLogger(__name__)


class TaskSet:
    """Tasks spawned by a host that nobody awaits: kept referenced until they end."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("host task %s failed", task.get_name(), exc_info=task.exception())

    async def join(self) -> None:
        """Wait until every task spawned so far (and any they spawn) has ended."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    def __iter__(self) -> Iterator[asyncio.Task]:
        return iter(set(self._tasks))

    def __len__(self) -> int:
        return len(self._tasks)


async def stop_task(task: asyncio.Task | None) -> None:
    """Cancel a background loop and wait for it to end."""
    while task is not None and not task.done():
        # Again until it ends: a cancel that lands in a Redis call (a blocking pop, a
        # heartbeat) can be swallowed inside the Redis client.
        task.cancel()
        await asyncio.wait({task}, timeout=0.1)
