"""
The WebSocket transport: ``/api/ws``. A thin ``AsyncJsonWebsocketConsumer`` whose JSON hooks
do JSON-RPC framing; every line goes to the one shared dispatch, and session events arrive
through the channel layer (the session groups this connection's channel joins).
"""

from __future__ import annotations

import logging
from typing import Any

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from .conf import setting
from .context import CallContext, Caller, close_summary
from .dispatch import dispatch_frame
from .protocol import Frame, encode, parse_frame, ready_message
from .sessions import get_host
from .sessions.host import SessionHost

logger = logging.getLogger(__name__)

#: Close code for a connection refused for missing or bad credentials (HTTP 403 pre-accept).
CLOSE_FORBIDDEN = 4003


class GatewayConsumer(AsyncJsonWebsocketConsumer):
    """One client connection speaking newline-delimited JSON-RPC 2.0."""

    ctx: CallContext | None = None
    host: SessionHost | None = None

    async def dispatch(self, message: dict[str, Any]) -> None:
        # AsyncConsumer.dispatch hops to a thread before every message to close stale DB
        # connections. Our handlers touch the ORM only through database_sync_to_async,
        # which already does that, so the per-message hop is pure overhead.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        client = self.scope.get("client") or ("", 0)
        self.ctx = CallContext(
            caller=Caller(user.pk, user.get_username(), user.is_staff),
            channel_name=self.channel_name,
            transport="websocket",
            peer=f"{client[0]}:{client[1]}" if client[0] else "",
        )
        self.host = await get_host()
        self.host.connection_opened(self.ctx)
        await self.accept()
        await self.send(text_data=encode(ready_message(setting("SKIN"))))

    ### Incoming ###

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None):
        if self.ctx is None:
            return
        if text_data is None:
            # Binary frames are not part of the protocol; decode them as text anyway so the
            # client still gets a JSON-RPC answer rather than a dropped connection.
            text_data = (bytes_data or b"").decode("utf-8", errors="replace")
        await self.receive_json(await self.decode_json(text_data))

    @classmethod
    async def decode_json(cls, text_data: str) -> Frame:
        return parse_frame(text_data)

    @classmethod
    async def encode_json(cls, content: dict[str, Any]) -> str:
        return encode(content)

    async def receive_json(self, content: Frame, **kwargs: Any) -> None:
        for response in await dispatch_frame(self.ctx, content):
            await self.safe_send(await self.encode_json(response))

    ### Outgoing ###

    async def session_event(self, message: dict[str, Any]) -> None:
        """A session event from the channel layer, already serialized by the host."""
        await self.safe_send(message["frame"])

    async def safe_send(self, text: str) -> None:
        try:
            await self.send(text_data=text)
        except Exception:
            if self.ctx is not None:
                self.ctx.count("send_failures")
            logger.debug("send failed on %s", self.channel_name, exc_info=True)

    async def disconnect(self, code: int) -> None:
        if self.ctx is None or self.host is None:
            return
        await self.host.connection_closed(self.ctx)
        logger.info("%s code=%s", close_summary(self.ctx), code)


class RefuseConsumer(AsyncJsonWebsocketConsumer):
    """Catch-all for stray WebSocket paths: refused before accept."""

    async def connect(self) -> None:
        await self.close(code=CLOSE_FORBIDDEN)
