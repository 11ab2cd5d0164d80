"""
The channel layer used with ``REDIS_URL``: channels-redis, made to ride out a Redis restart.

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

logger = logging.getLogger(__name__)

_RETRYABLE = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)
MAX_BACKOFF_S = 1.0


class ResilientRedisChannelLayer(RedisChannelLayer):
    """channels-redis whose ``receive`` retries (backoff up to 1 s) while Redis is down."""

    async def receive(self, channel: str) -> dict[str, Any]:
        delay = 0.05
        while True:
            try:
                return await super().receive(channel)
            except _RETRYABLE as exc:
                logger.warning("channel layer receive failed (%r); retrying in %.2fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)
