"""
Sends the host's ``gateway_app.signals`` from one background task, in the order they were
emitted: callers on the event loop only queue, so no receiver (slow, blocking or raising)
delays a client's call or reorders one session's signals.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from asgiref.sync import ThreadSensitiveContext
from django.dispatch import Signal

from .tasks import stop_task

logger = logging.getLogger(__name__)

#: Seconds a stopping host waits for its receivers to take what is queued.
STOP_GRACE_S = 5.0
#: Signals queued at most; beyond it new ones are dropped (and logged) rather than letting
#: a receiver that never returns grow the worker's memory.
MAX_QUEUED = 10_000


class SignalEmitter:
    """One host's queue of signals to send and the task that sends them."""

    def __init__(self, sender: Any):
        self.sender = sender
        self.dropped = 0
        self._queue: asyncio.Queue[tuple[Signal, dict[str, Any]] | None] = asyncio.Queue(MAX_QUEUED)
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        # Not in the host's TaskSet: that set's join() waits for tasks that end, and this
        # one runs until stop().
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._send_forever())

    def emit(self, signal: Signal, **kwargs: Any) -> None:
        """Queue ``signal`` with its arguments; returns at once (nothing is queued when the
        signal has no receivers)."""
        if not signal.has_listeners(self.sender):
            return
        try:
            self._queue.put_nowait((signal, kwargs))
        except asyncio.QueueFull:
            self.dropped += 1
            logger.warning("signal receivers are %d signals behind; dropped one", MAX_QUEUED)

    async def flush(self) -> None:
        """Wait until every signal queued so far has been sent to its receivers."""
        await self._queue.join()

    async def stop(self) -> None:
        """Send what is queued (for at most STOP_GRACE_S), then end the task."""
        if self._task is None or self._task.done():
            return
        try:
            self._queue.put_nowait(None)
        except asyncio.QueueFull:
            pass  # the grace below runs out; what is left is not sent
        await asyncio.wait({self._task}, timeout=STOP_GRACE_S)
        await stop_task(self._task)

    async def _send_forever(self) -> None:
        # A thread of its own for sync receivers: the default one (thread_sensitive) is the
        # one the worker's ORM calls share, which a blocking receiver would hold up.
        async with ThreadSensitiveContext():
            while True:
                item = await self._queue.get()
                try:
                    if item is None:
                        return
                    await self._send(*item)
                finally:
                    self._queue.task_done()

    async def _send(self, signal: Signal, kwargs: dict[str, Any]) -> None:
        try:
            # asend_robust logs each receiver's exception (logger django.dispatch).
            await signal.asend_robust(self.sender, **kwargs)
        except Exception:
            logger.exception("sending a gateway signal failed")
