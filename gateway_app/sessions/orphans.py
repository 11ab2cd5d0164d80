"""
Rows that a stopped worker left saying live, running or attached (it was killed, or its
server stopped without finalizing them) are marked detached: that is what they are,
resumable from their transcripts. The admin reads the rows; ``session.list`` already shows
them so.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable

from ..conf import setting
from .store import SessionStore
from .tasks import stop_task

logger = logging.getLogger(__name__)


class OrphanSettler:
    """Settles at start; beside other workers (any may die) every ``SETTLE_INTERVAL_S``."""

    def __init__(
        self, store: SessionStore, host_alive: Callable[[str], Awaitable[bool]], shared: bool
    ):
        self.store = store
        self.host_alive = host_alive
        self.shared = shared
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        # In a context of its own: the host may be started by a request whose context
        # routes database calls to a thread that request holds.
        self.task = asyncio.get_running_loop().create_task(
            self.settle_forever(), context=contextvars.Context()
        )

    async def stop(self) -> None:
        await stop_task(self.task)
        self.task = None

    async def settle_forever(self) -> None:
        """Once at start; then periodically beside other workers (interval 0: never again)."""
        await self.settle()
        while self.shared and (interval := setting("SETTLE_INTERVAL_S")) > 0:
            await asyncio.sleep(interval)
            await self.settle()

    async def settle(self) -> None:
        """One pass; it never fails the start: the rows are only a display."""
        try:
            claimed = await self.store.claimed_hosts()
            stopped = [channel for channel in claimed if not await self.host_alive(channel)]
        except Exception as exc:
            logger.warning("could not check for sessions left by stopped workers: %r", exc)
            return
        if stopped:
            self.store.detach_hosted_by(stopped)
            logger.info(
                "marking the sessions of %d stopped host(s) detached: %s",
                len(stopped),
                ", ".join(stopped),
            )
