"""
A worker's graceful stop (SIGTERM, ``gateway_drain``, the admin), so a restart loses no work:
no new session or turn starts here, running turns finish (or are interrupted at
``DRAIN_TIMEOUT_S``, their partial text kept), every session is left detached and resumable
with no host, the host leaves the registry, and each connection is told to reconnect (close
1012) as soon as nothing it holds runs here, so its resume cold-starts on another worker at
once. The server adapter registers what stops its listening and what ends the process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..conf import setting

if TYPE_CHECKING:
    from .host import SessionHost
    from .state import LiveSession

logger = logging.getLogger(__name__)

#: The teardown outcome of a drained session: not a close reason, its row stays resumable.
DRAINED = "drained"
#: The channel-layer message that has a connection's consumer close with 1012.
RESTART_MESSAGE = "gateway.restart"
#: How long a drained worker waits for the connections it restarted to close before it
#: stops: a consumer gives its queued frames 2 s (``RESTART_FLUSH_S``), then closes.
CLOSE_WAIT_S = 3.0


async def drain_host(host: SessionHost, turn_timeout: float) -> None:
    """Drain every live session of ``host``, then withdraw it and restart its connections."""
    host.draining = True
    deadline = asyncio.get_running_loop().time() + turn_timeout
    # Connections holding nothing here may go at once.
    for channel in _local_channels(host):
        if not _holds_live(host, channel):
            await restart_connection(host, channel)
    await asyncio.gather(
        *(_drain_session(host, session, deadline) for session in list(host.sessions.values()))
    )
    await host.store.flush()
    await host.heartbeat.stop()
    try:
        await host.registry.withdraw(host.channel_name)
    except Exception as exc:
        # Its liveness key then expires after HOST_DEAD_AFTER_S, as a crashed host's does.
        logger.warning("could not withdraw %s from the registry: %r", host.channel_name, exc)
    for channel in _local_channels(host):
        await restart_connection(host, channel)
    logger.info("session host %s drained", host.worker_name)


async def _drain_session(host: SessionHost, session: LiveSession, deadline: float) -> None:
    """Let the session's turn finish by ``deadline`` (else interrupt it), then retire it."""
    turn = session.turn
    if turn is not None and turn.task is not None:
        remaining = max(0.0, deadline - asyncio.get_running_loop().time())
        done, _ = await asyncio.wait({turn.task}, timeout=remaining)
        if not done:
            logger.info("session %s: interrupting its turn to drain", session.id)
            turn.interrupt()
            await asyncio.wait({turn.task})
    attached = list(session.attached)
    await host.teardown(session, DRAINED)
    # The detached row is what the next worker revives the session from: stored first.
    await host.store.flush()
    for channel in attached:
        ctx = host.connections.get(channel)
        if ctx is not None and ctx.transport != "remote" and not _holds_live(host, channel):
            await restart_connection(host, channel)


async def connections_closed(host: SessionHost, within: float) -> bool:
    """
    Wait until every WebSocket connection of ``host`` closed (a drain told each to), for
    ``within`` seconds at most; whether they all did. The worker stops after this: a process that
    exits first drops their sockets without the 1012 that tells clients to reconnect at once.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while _local_channels(host):
        host.connection_gone.clear()
        try:
            await asyncio.wait_for(host.connection_gone.wait(), deadline - loop.time())
        except TimeoutError:
            return False
    return True


def _local_channels(host: SessionHost) -> list[str]:
    return [c for c, ctx in host.connections.items() if ctx.transport == "websocket"]


def _holds_live(host: SessionHost, channel: str) -> bool:
    """Whether the connection is attached to a session still live on this host."""
    ctx = host.connections.get(channel)
    return ctx is not None and any(sid in host.sessions for sid in ctx.attached)


async def restart_connection(host: SessionHost, channel: str) -> None:
    """Have the connection's consumer close with 1012 (best effort: it is going anyway)."""
    try:
        await host.layer.send(channel, {"type": RESTART_MESSAGE})
    except Exception as exc:
        logger.warning("could not tell %s to reconnect: %r", channel, exc)


class WorkerDrain:
    """This process' drain: requested once (a signal, a control message), run once."""

    def __init__(self) -> None:
        self.draining = False
        self.task: asyncio.Task | None = None
        #: Called when the drain starts (the server stops accepting connections).
        self.on_start: list[Callable[[], object]] = []
        #: Called when it is over (the server stops, the process exits).
        self.on_done: list[Callable[[], object]] = []

    def request(self) -> asyncio.Task:
        """Start the drain on the running loop; a second request joins the first."""
        if self.task is None:
            self.draining = True
            self.task = asyncio.get_running_loop().create_task(self._run())
        return self.task

    async def _run(self) -> None:
        # Imported here: the host module imports this one (its refusals, its host channel).
        from .host import current_host

        logger.warning("draining this worker (DRAIN_TIMEOUT_S=%s)", setting("DRAIN_TIMEOUT_S"))
        try:
            for hook in self.on_start:
                hook()
            host = current_host()
            if host is not None:
                await drain_host(host, setting("DRAIN_TIMEOUT_S"))
                if not await connections_closed(host, CLOSE_WAIT_S):
                    logger.warning("connections still open %ss after the drain", CLOSE_WAIT_S)
                # Stopped but kept as this worker's host: a call still arriving on an open
                # socket must meet its refusals, not start a fresh host in a dying process.
                await host.stop()
        except Exception:
            logger.exception("draining failed; stopping anyway")
        finally:
            for hook in self.on_done:
                hook()

    def reset(self) -> None:
        """Forget a finished drain and its hooks (tests)."""
        self.__init__()


#: The one drain of this process.
worker_drain = WorkerDrain()
