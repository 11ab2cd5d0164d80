"""
The host channel: every message for this worker's host (reaps, operator teardowns, forwarded
calls and their replies, token revocations, ended logins) arrives here and is routed by its
type to the handler of the same name, as Channels consumers route theirs.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import TYPE_CHECKING, Any

from channels.consumer import get_handler_name
from channels.layers import BaseChannelLayer

from ..auth import logins, tokens
from .cluster import messages
from .seen import SeenIds
from .state import LiveSession
from .tasks import TaskSet, stop_task

if TYPE_CHECKING:
    from .cluster.router import SessionRouter
    from .reaper import Reaper

logger = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[None]]
Teardown = Callable[[LiveSession, str], Awaitable[None]]


@dataclass(eq=False)
class HostChannel:
    """Receives the host channel's messages, drops replays and runs each one's handler."""

    layer: BaseChannelLayer
    _: KW_ONLY
    sessions: dict[str, LiveSession]
    teardown: Teardown
    reaper: Reaper
    router: SessionRouter
    tasks: TaskSet
    counters: Counter
    seen: SeenIds
    drain: Callable[[], object]
    name: str = field(default="", init=False)
    task: asyncio.Task | None = field(default=None, init=False)
    handlers: dict[str, Handler] = field(init=False)

    def __post_init__(self) -> None:
        # Built once: a message type without its handler fails here, not on first delivery.
        self.handlers = {
            kind: getattr(self, get_handler_name({"type": kind}))
            for kind in messages.HOST_MESSAGE_TYPES
        }

    def start(self, name: str) -> None:
        self.name = name
        self.task = asyncio.get_running_loop().create_task(self.listen())

    async def stop(self) -> None:
        await stop_task(self.task)
        self.task = None

    async def listen(self) -> None:
        """Receive forever; while the layer is down (Redis restarting), retry with backoff."""
        backoff = 0.1
        while True:
            try:
                message = await self.layer.receive(self.name)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.counters["layer_errors"] += 1
                logger.warning("host channel receive failed (%r); retrying in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
                continue
            backoff = 0.1
            await self.dispatch(message)

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Run the message's handler once; an unknown type or a failing handler is logged."""
        kind = message.get("type")
        handler = self.handlers.get(kind) if isinstance(kind, str) else None
        if handler is None:
            logger.error("host channel got a message of unknown type %r", kind)
            return
        if not self._first_delivery(kind, message):
            return
        try:
            await handler(message)
        except Exception:
            logger.exception("host failed handling %r", kind)

    def _first_delivery(self, kind: str, message: dict[str, Any]) -> bool:
        """
        False for a message this host already served: a valid signed message captured from
        Redis and pushed again must not run twice (a second teardown, an answer replayed).
        """
        message_id = messages.message_id(message)
        if not message_id or self.seen.first(f"{kind}:{message_id}"):
            return True
        self.counters["replays_dropped"] += 1
        logger.warning("dropped a repeated %r (id %s) on the host channel", kind, message_id)
        return False

    ### Handlers ###
    # Reaps, teardowns and calls run in tasks of their own: a teardown may wait seconds on a
    # slash worker, and replies, calls and revocations must not queue behind it. A reap is
    # still judged atomically, when its task runs (Reaper.handle).

    async def session_reap(self, message: dict[str, Any]) -> None:
        self.tasks.spawn(self.reaper.handle(message))

    async def session_teardown(self, message: dict[str, Any]) -> None:
        session = self.sessions.get(message.get("session_id", ""))
        reason = message.get("reason")
        if session is not None and reason in messages.TEARDOWN_REASONS:
            self.tasks.spawn(self.teardown(session, reason))

    async def host_call(self, message: dict[str, Any]) -> None:
        self.tasks.spawn(self.router.handle_call(message))

    async def host_reply(self, message: dict[str, Any]) -> None:
        self.router.handle_reply(message)

    async def token_revoked(self, message: dict[str, Any]) -> None:
        await tokens.revoked_elsewhere(int(message["token_id"]))

    async def login_ended(self, message: dict[str, Any]) -> None:
        await logins.ended_elsewhere(str(message["session"]))

    async def host_drain(self, message: dict[str, Any]) -> None:
        logger.warning("drain requested over the host channel")
        self.drain()

    async def login_changed(self, message: dict[str, Any]) -> None:
        # In a task: the re-check reads the database.
        self.tasks.spawn(logins.changed_elsewhere(int(message["user_id"])))
