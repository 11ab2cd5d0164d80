"""
The WebSocket transport: ``/api/ws``. A thin ``AsyncJsonWebsocketConsumer`` that frames
JSON-RPC in ``receive`` (several lines per frame, limits first) and leaves the base class's JSON
hooks as they are; every line goes to the one shared dispatch, and session events arrive through
the channel layer (the session groups this connection's channel joins). Input and output limits
live in ``limits``; this module only wires them to the socket.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from ..adapters.daphne import server_buffer_probe
from ..auth import logins, tokens
from ..auth.permissions import PERMISSION, may_connect
from ..conf import setting
from ..metrics import families
from ..rpc.codes import (
    CLOSE_FORBIDDEN,
    CLOSE_SEND_QUEUE_FULL,
    CLOSE_SERVICE_RESTART,
    CLOSE_TOO_MANY_CONNECTIONS,
)
from ..rpc.context import CallContext, Caller, close_summary
from ..rpc.dispatch import dispatch_frame
from ..rpc.protocol import Frame, encode, ready_message, utf8_length
from ..sessions.drain import worker_drain
from ..sessions.host import SessionHost, get_host
from ..sessions.state import delivers_to
from . import limits
from .limits import InputGuard, Outbox, cap_response, user_buckets, user_connections

logger = logging.getLogger(__name__)

#: How long a restarting connection's queued frames may take to go out before its 1012.
RESTART_FLUSH_S = 2.0

#: Connection cleanups in progress. Held here, not only by their consumer: the server may
#: cancel a consumer again while its cleanup runs, and the cleanup must still finish.
_cleanups: set[asyncio.Task] = set()


class GatewayConsumer(AsyncJsonWebsocketConsumer):
    """One client connection speaking newline-delimited JSON-RPC 2.0."""

    ctx: CallContext | None = None
    host: SessionHost | None = None
    guard: InputGuard | None = None
    outbox: Outbox | None = None
    token_id: int | None = None
    session_key: str | None = None
    closing = False
    sent_close_code: int | None = None
    _counted = False
    _watching = False
    _watching_login = False
    _closer: asyncio.Task | None = None
    _cleanup: asyncio.Task | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # Daphne cancels an application still running application_close_timeout after its
            # client left (a handler stuck on a slow slash command, a forwarded call, a
            # database lock), and channels then runs no disconnect logic: run ours here.
            if self._cleanup is None or not self._cleanup.done():
                task = asyncio.current_task()
                await self._finish(None, "cancelled" if task and task.cancelling() else "error")

    async def dispatch(self, message: dict[str, Any]) -> None:
        # AsyncConsumer.dispatch hops to a thread before every message to close stale DB
        # connections. Our handlers touch the ORM only through database_sync_to_async,
        # which already does that, so the per-message hop is pure overhead.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        # The base class hops to a thread after disconnect() to close stale DB connections
        # (aclose_old_connections), for the same reason as dispatch: not needed here. The
        # gateway joins no static ``groups``; its session groups are left in disconnect().
        await self.disconnect(message["code"])
        raise StopConsumer()

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        client = self.scope.get("client") or ("", 0)
        if not await may_connect(user.pk):
            logger.warning(
                "refused websocket from %s: user %s lacks %s (REQUIRE_PERMISSION)",
                client[0] or "unknown client",
                user.pk,
                PERMISSION,
            )
            await self.close(code=CLOSE_FORBIDDEN)
            return
        ctx = CallContext(
            caller=Caller(user.pk, user.get_username(), user.is_staff),
            channel_name=self.channel_name,
            transport="websocket",
            peer=f"{client[0]}:{client[1]}" if client[0] else "",
        )
        if worker_drain.draining:
            # This worker is restarting: the client reconnects at once, to another worker.
            await self.accept()
            await self.close(code=CLOSE_SERVICE_RESTART)
            return
        # The host first: it is what hears of revocations for this worker.
        self.host = await get_host()
        if not self._watch_token(ctx) or not self._watch_login(ctx):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.guard = InputGuard(ctx)
        max_connections = setting("MAX_CONNECTIONS_PER_USER")
        if not user_connections.acquire(ctx.user_id, self.channel_name, max_connections):
            # Accepted, then closed with a code of its own: a 403 would read as bad credentials.
            self.guard.log.hit("connections_per_user", f"already {max_connections} open")
            await self.accept()
            await self.close(code=CLOSE_TOO_MANY_CONNECTIONS)
            return
        self._counted = True
        self.guard.user_bucket = user_buckets.acquire(
            ctx.user_id, self.channel_name, self.guard.limits
        )
        self.outbox = Outbox(
            self._write,
            max_frames=setting("SEND_QUEUE_LIMIT"),
            max_bytes=setting("SEND_QUEUE_BYTES"),
            probe=server_buffer_probe(self.base_send),
        )
        self.ctx = ctx
        self.host.connection_opened(ctx)
        await self.accept()
        self.outbox.start()
        await self.deliver(encode(ready_message(setting("SKIN"))))

    def _watch_token(self, ctx: CallContext) -> bool:
        """Confirm the API token is not revoked, and list the socket under it for one."""
        token_id = self.scope.get("api_token_id")
        if self.scope.get("auth_method") != "token" or token_id is None:
            return True
        self.token_id = ctx.token_id = token_id
        # Checked and listed with no await in between: a revocation this worker hears of
        # (tokens.revoked_elsewhere) either came first and is remembered, or finds this
        # socket in the list. The moment it may still be in flight is the re-check's.
        if tokens.recent.is_revoked(token_id):
            return False
        tokens.watch.track(token_id, self.channel_name)
        self._watching = True
        return True

    def _watch_login(self, ctx: CallContext) -> bool:
        """List a cookie socket under its login session, unless that login just ended."""
        session = self.scope.get("session")
        if self.scope.get("auth_method") != "session" or session is None:
            return True
        session_key = session.session_key
        if not session_key:
            return False
        # No await before the listing, as for tokens: a logout heard meanwhile refuses it.
        if not logins.watch.track_login(ctx.user_id, session_key, self.channel_name):
            return False
        self.session_key = session_key
        self._watching_login = True
        return True

    ### Incoming ###

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None):
        if self.ctx is None or self.closing:
            return
        families.FRAMES_RECEIVED.inc()
        if text_data is None:
            # Binary frames are not part of the protocol; decode them as text anyway so the
            # client still gets a JSON-RPC answer rather than a dropped connection.
            raw = bytes_data or b""
            if self.guard.frame_too_large(len(raw)):
                await self._close(limits.CLOSE_FRAME_TOO_LARGE)
                return
            text_data = raw.decode("utf-8", errors="replace")
        elif self.guard.frame_too_large(utf8_length(text_data)):
            await self._close(limits.CLOSE_FRAME_TOO_LARGE)
            return
        await self.answer(self.guard.frame(text_data))

    async def answer(self, frame: Frame) -> None:
        """Dispatch a frame's lines in order and deliver their responses, each capped to a
        frame (the gateway's framing, not the base class's one-JSON-value-per-frame hooks)."""
        frame_limit = self.guard.limits.frame_bytes
        for response in await dispatch_frame(self.ctx, frame):
            text = encode(response)
            await self.deliver(cap_response(response, text, frame_limit, self.guard.log))

    ### Outgoing ###

    async def session_event(self, message: dict[str, Any]) -> None:
        """A session event from the channel layer, already serialized by the host; passed on
        only when the session is this connection's user's (group membership is unsigned)."""
        if self.ctx is not None and not delivers_to(message, self.ctx.user_id):
            logger.warning(
                "dropped an event of session %s (not of user %s) on %s",
                message.get("session_id"),
                self.ctx.user_id,
                self.channel_name,
            )
            return
        await self.deliver(message["frame"])

    async def deliver(self, text: str) -> None:
        """Send or queue a frame for the client; a client too far behind is closed with 4008."""
        if self.closing or self.outbox is None:
            return
        if not await self.outbox.send(text):
            self.guard.log.hit(
                "send_queue",
                f"{self.outbox.frames} frames / {self.outbox.bytes} bytes unsent",
            )
            # The close is sent from a task, so this handler returns at once; the outbox is
            # dropped at once too, so its memory is freed.
            self._closer = asyncio.get_running_loop().create_task(
                self._close(CLOSE_SEND_QUEUE_FULL)
            )
            self.closing = True

    async def _write(self, text: str) -> None:
        try:
            await self.send(text_data=text)
            families.FRAMES_SENT.inc()
        except Exception:
            if self.ctx is not None:
                self.ctx.count("send_failures")
            logger.debug("send failed on %s", self.channel_name, exc_info=True)

    async def _close(self, code: int) -> None:
        self.closing = True
        self.sent_close_code = code
        if self.outbox is not None:
            await self.outbox.stop()
        try:
            await self.close(code=code)
        except Exception:
            if code != limits.CLOSE_FRAME_TOO_LARGE:
                raise
            # Daphne (autobahn) sends only 1000 and 3000-4999 from an application and
            # refuses 1009; PROTOCOL.md's 4013 says the same thing in the gateway's range.
            self.sent_close_code = limits.CLOSE_MESSAGE_TOO_LARGE
            await self.close(code=limits.CLOSE_MESSAGE_TOO_LARGE)

    async def token_revoked(self, message: dict[str, Any]) -> None:
        """The connection's API token was revoked: close with 4003."""
        if self.ctx is None or self.closing:
            return
        logger.info(
            "closing connection of user=%s peer=%s: API token %s revoked",
            self.ctx.caller.username,
            self.ctx.peer or "-",
            self.token_id,
        )
        await self._close(CLOSE_FORBIDDEN)

    async def login_ended(self, message: dict[str, Any]) -> None:
        """The connection's login session ended (logout, password change, deactivation, an
        expired session): close with 4003."""
        if self.ctx is None or self.closing:
            return
        logger.info(
            "closing connection of user=%s peer=%s: its login session ended",
            self.ctx.caller.username,
            self.ctx.peer or "-",
        )
        await self._close(CLOSE_FORBIDDEN)

    async def gateway_restart(self, message: dict[str, Any]) -> None:
        """This worker drained what the connection held: its frames out, then close 1012."""
        if self.ctx is None or self.closing:
            return
        if self.outbox is not None:
            await self.outbox.flush(RESTART_FLUSH_S)
        await self._close(CLOSE_SERVICE_RESTART)

    async def disconnect(self, code: int) -> None:
        await self._finish(code)

    async def _finish(self, code: int | None, ended: str = "") -> None:
        """
        Release what the connection holds, exactly once, whether the consumer ends on the
        client's disconnect (``code``) or otherwise (``ended``: cancelled, error). The work
        runs in a task of its own, shielded: a cancellation meanwhile does not cut it short.
        """
        if self._cleanup is None:
            self.closing = True
            # What needs no await is released here and now, whatever happens next.
            if self._watching:
                self._watching = False
                tokens.watch.untrack(self.token_id, self.channel_name)
            if self._watching_login:
                self._watching_login = False
                logins.watch.untrack(self.session_key, self.channel_name)
            if self._counted:
                self._counted = False
                user_connections.release(self.scope["user"].pk, self.channel_name)
                user_buckets.release(self.scope["user"].pk, self.channel_name)
            task = asyncio.get_running_loop().create_task(self._release(code, ended))
            _cleanups.add(task)
            task.add_done_callback(_cleanups.discard)
            self._cleanup = task
        await asyncio.shield(self._cleanup)

    async def _release(self, code: int | None, ended: str) -> None:
        if self.outbox is not None:
            await self.outbox.stop()
            # It holds our bound _write: left in place, that cycle would keep the whole
            # connection (scope, guard, context) alive until a garbage collection.
            self.outbox = None
        if self.ctx is None or self.host is None:
            return
        try:
            await self.host.connection_closed(self.ctx)
        except Exception:
            # Reported here: no one awaits the cleanup of a consumer cancelled twice.
            logger.exception("detaching the sessions of %s failed", self.channel_name)
        # The code the gateway closed with when it did (4008, 4013, 4003...): the client may
        # never see that close frame, and the server then reports a dropped socket (1006).
        sent = f" closed_by_gateway={self.sent_close_code}" if self.sent_close_code else ""
        # Without a disconnect (cancelled by the server) the client's close code is unknown.
        how = f" ended={ended}" if ended else ""
        logger.info(
            "%s code=%s%s%s", close_summary(self.ctx), "-" if code is None else code, sent, how
        )


class RefuseConsumer(AsyncJsonWebsocketConsumer):
    """Catch-all for stray WebSocket paths: refused before accept."""

    async def connect(self) -> None:
        await self.close(code=CLOSE_FORBIDDEN)
