"""The tasks a session host runs in the background, so none is lost and each failure is logged."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterator
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


class Periodic:
    """
    Runs ``action`` every ``interval()`` seconds (read before each wait, so a changed setting
    applies) until stopped. A failing run is logged to ``log`` and the loop goes on: one Redis
    or database hiccup must not end a worker's heartbeat or sweep for good.
    """

    def __init__(
        self,
        action: Callable[[], Awaitable[Any]],
        interval: Callable[[], float],
        *,
        failure: str,
        log: logging.Logger = logger,
        traceback: bool = False,
        on_failure: Callable[[Exception], None] | None = None,
    ) -> None:
        self.action = action
        self.interval = interval
        self.failure = failure
        self.log = log
        self.traceback = traceback
        self.on_failure = on_failure
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        await stop_task(self.task)
        self.task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval())
            try:
                await self.action()
            except Exception as exc:
                if self.on_failure is not None:
                    self.on_failure(exc)
                if self.traceback:
                    self.log.exception("%s", self.failure)
                else:
                    self.log.warning("%s: %r", self.failure, exc)
