"""
Where each live session is hosted, and which hosts are alive.

With one worker (InMemory layer) every session is local and ``LocalRegistry`` answers
nothing. With ``REDIS_URL`` the ``RedisRegistry`` keeps the hot fields all workers need:
``hermes:session:<sid>`` -> host channel and owner, and ``hermes:host:<channel>`` heartbeat
keys that expire when a worker dies (a crashed daphne never runs its disconnect code).
The database row's ``host_channel`` is the fallback when Redis lost its data (a restart).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from channels.db import database_sync_to_async

from ..models import GatewaySession, SessionStatus

logger = logging.getLogger(__name__)

SESSION_KEY = "hermes:session:{}"
HOST_KEY = "hermes:host:{}"

# Claim a session for a new host only if its recorded host is still the dead one.
_CLAIM = """
local current = redis.call('HGET', KEYS[1], 'host')
if current == false or current == ARGV[1] then
    redis.call('HSET', KEYS[1], 'host', ARGV[2], 'user', ARGV[3])
    return 1
end
return 0
"""

# Forget a session only if this host still owns it.
_RELEASE = """
if redis.call('HGET', KEYS[1], 'host') == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass(frozen=True, slots=True)
class HostEntry:
    host: str
    user_id: int


class LocalRegistry:
    """Single worker: nothing is hosted elsewhere."""

    shared = False

    async def register(self, session_id: str, user_id: int, host: str) -> None:
        return None

    async def release(self, session_id: str, host: str) -> None:
        return None

    async def lookup(self, session_id: str) -> HostEntry | None:
        return None

    async def claim(self, session_id: str, dead_host: str, host: str, user_id: int) -> bool:
        return True

    async def heartbeat(self, host: str, ttl_s: float) -> str:
        """Refresh this host's liveness; returns an id of the registry's current data set."""
        return "local"

    async def alive(self, host: str) -> bool:
        return True

    async def hosts(self) -> list[str]:
        """Channels of every live host (other workers included)."""
        return []

    async def close(self) -> None:
        return None


class RedisRegistry(LocalRegistry):
    """Hot fields in Redis, shared by every worker."""

    shared = True

    def __init__(self, url: str):
        import redis.asyncio as redis

        self.redis = redis.from_url(
            url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=5
        )
        self._claim = self.redis.register_script(_CLAIM)
        self._release = self.redis.register_script(_RELEASE)

    async def register(self, session_id: str, user_id: int, host: str) -> None:
        await self.redis.hset(
            SESSION_KEY.format(session_id), mapping={"host": host, "user": user_id}
        )

    async def release(self, session_id: str, host: str) -> None:
        await self._release(keys=[SESSION_KEY.format(session_id)], args=[host])

    async def lookup(self, session_id: str) -> HostEntry | None:
        values = await self.redis.hmget(SESSION_KEY.format(session_id), ["host", "user"])
        if values[0] is not None:
            return HostEntry(values[0].decode(), int(values[1]))
        # Redis may have restarted and lost the key: the database row knows the host.
        row = await database_sync_to_async(_stored_host)(session_id)
        return row

    async def claim(self, session_id: str, dead_host: str, host: str, user_id: int) -> bool:
        claimed = await self._claim(
            keys=[SESSION_KEY.format(session_id)], args=[dead_host, host, user_id]
        )
        return bool(claimed)

    async def heartbeat(self, host: str, ttl_s: float) -> str:
        """Refresh this host's liveness; returns Redis' run id, which a restart changes."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(HOST_KEY.format(host), b"1", px=int(ttl_s * 1000))
            pipe.info("server")
            _, info = await pipe.execute()
        return str(info.get("run_id", ""))

    async def alive(self, host: str) -> bool:
        return bool(await self.redis.exists(HOST_KEY.format(host)))

    async def hosts(self) -> list[str]:
        prefix = HOST_KEY.format("")
        return [
            key.decode().removeprefix(prefix)
            async for key in self.redis.scan_iter(match=prefix + "*", count=100)
        ]

    async def close(self) -> None:
        await self.redis.aclose()


def _stored_host(session_id: str) -> HostEntry | None:
    row = (
        GatewaySession.objects.filter(pk=session_id)
        .exclude(status=SessionStatus.CLOSED)
        .values_list("host_channel", "user_id")
        .first()
    )
    if row is None or not row[0]:
        return None
    return HostEntry(row[0], row[1])


def build_registry(redis_url: str) -> LocalRegistry:
    return RedisRegistry(redis_url) if redis_url else LocalRegistry()
