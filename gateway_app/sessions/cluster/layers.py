"""
The channel layer used with ``REDIS_URL``: channels-redis, with signed messages, made to
ride out a Redis restart.

Messages are signed (``signing``): one that anybody else pushed into Redis, altered,
or kept past the layer's expiry is dropped with a warning and counted in ``rejected``, and
the receive goes on to the next one, so a forgery can neither run nor crash a consumer or
the session host's listener.

``RedisChannelLayer.receive`` raises when Redis is unreachable, which would crash every
consumer waiting on its channel (closing the sockets of clients that need nothing from Redis)
and the session host's listener. Here a failed receive waits and tries again instead, so
connections stay open and the worker recovers by itself once Redis is back. Sends still
raise: their callers report the error to the client that needed Redis.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels_redis.core import RedisChannelLayer
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .signing import SIGNED_FORMAT, InvalidMessage

logger = logging.getLogger(__name__)

_RETRYABLE = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)
MAX_BACKOFF_S = 1.0


class ResilientRedisChannelLayer(RedisChannelLayer):
    """channels-redis with signed messages whose ``receive`` retries while Redis is down."""

    def __init__(self, *args: Any, serializer_format: str = SIGNED_FORMAT, **kwargs: Any):
        super().__init__(*args, serializer_format=serializer_format, **kwargs)
        #: Messages dropped because they failed verification (forged, altered, stale).
        self.rejected = 0

    async def receive(self, channel: str) -> dict[str, Any]:
        delay = 0.05
        while True:
            try:
                return await super().receive(channel)
            except _RETRYABLE as exc:
                logger.warning("channel layer receive failed (%r); retrying in %.2fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)

    async def receive_single(self, channel: str) -> tuple[Any, dict[str, Any]]:
        """The next message that verifies; those that do not are already off the queue."""
        while True:
            try:
                return await super().receive_single(channel)
            except InvalidMessage as exc:
                # Its sender is unknown: whatever it says (channel, type) is not to be trusted.
                self.rejected += 1
                logger.warning(
                    "dropped a message on %s that failed verification (%s); %d dropped so far",
                    channel,
                    exc,
                    self.rejected,
                )
