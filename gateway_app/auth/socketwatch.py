"""
The open sockets of this worker by the credential that authenticated them (an API token, a
login session), re-checked against the database every ``TOKEN_RECHECK_S`` by one task: the
backstop for a revocation no message announced to this worker.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Hashable

from channels.layers import get_channel_layer

from ..conf import setting

logger = logging.getLogger(__name__)


class SocketWatch:
    """Channel names by credential; subclasses say what ``check`` re-validates."""

    #: Message type sent to a socket whose credential stopped authenticating.
    close_message = ""
    #: What the periodic re-check is called in the log.
    what = "credential"

    def __init__(self) -> None:
        self._sockets: dict[Hashable, set[str]] = {}
        self._task: asyncio.Task | None = None

    def track(self, key: Hashable, channel_name: str) -> None:
        self._sockets.setdefault(key, set()).add(channel_name)
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            # A context of its own: the first socket's context must not outlive it here.
            self._task = loop.create_task(self._watch_forever(), context=contextvars.Context())

    def untrack(self, key: Hashable, channel_name: str) -> None:
        channels = self._sockets.get(key)
        if channels is not None:
            channels.discard(channel_name)
            if not channels:
                del self._sockets[key]
                self.forgotten(key)

    def forgotten(self, key: Hashable) -> None:
        """The last socket of ``key`` closed (a hook for what subclasses keep beside)."""

    async def close_sockets(self, key: Hashable) -> int:
        """Tell this worker's sockets of a credential to close (4003); returns how many."""
        channels = sorted(self._sockets.get(key, ()))
        layer = get_channel_layer()
        for channel_name in channels:
            await layer.send(channel_name, {"type": self.close_message})
        return len(channels)

    async def _watch_forever(self) -> None:
        me = asyncio.current_task()
        while self._sockets and self._task is me:
            # Floored: 0 must not turn this into a busy loop on the database.
            await asyncio.sleep(max(setting("TOKEN_RECHECK_S"), 0.05))
            try:
                await self.check()
            except Exception:
                logger.warning("%s re-check failed", self.what, exc_info=True)
        if self._task is me:
            self._task = None

    async def check(self) -> list:
        """Close the sockets of every watched credential that no longer authenticates."""
        raise NotImplementedError

    def reset(self) -> None:
        """Forget every socket; the task ends at its next wake-up (tests, between loops)."""
        self._sockets.clear()
        self._task = None
