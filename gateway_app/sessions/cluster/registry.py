"""
Where each live session is hosted, and which hosts are alive.

With one worker (InMemory layer) every session is local and ``LocalRegistry`` answers
nothing. With ``REDIS_URL`` the ``RedisRegistry`` keeps the hot fields all workers need:
``hermes:session:<sid>`` -> host channel and owner, and ``hermes:host:<channel>`` heartbeat
keys that expire when a worker dies (a crashed daphne never runs its disconnect code).
A session key is only ever taken with an atomic claim, and it expires with its host's
heartbeat, which renews the keys of the sessions the host still owns (and tells it of those
it lost), so the keys of a dead host's sessions do not outlive it. The database row's
``host_channel`` is the fallback when the key is gone (expired, or Redis lost its data).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async

from ...conf import registry_redis_url, setting
from ...metrics import families
from ...models import GatewaySession, SessionStatus

logger = logging.getLogger(__name__)

SESSION_KEY = "hermes:session:{}"
HOST_KEY = "hermes:host:{}"

# Claim a session for a host if nobody holds it, the claimant already does, or its recorded
# host is still the dead one (ARGV: dead host or "", claimant, user, ttl ms).
_CLAIM = """
local current = redis.call('HGET', KEYS[1], 'host')
if current == false or current == ARGV[1] or current == ARGV[2] then
    redis.call('HSET', KEYS[1], 'host', ARGV[2], 'user', ARGV[3])
    redis.call('PEXPIRE', KEYS[1], ARGV[4])
    return 1
end
return 0
"""

# A host's beat (KEYS: its liveness key, then its sessions' keys; ARGV: host, ttl ms, its
# worker name (the liveness key's value, for ``gateway_drain <worker>``), then the user of
# each session). Per session: 1 still its own (expiry renewed); 2 the key had
# expired and is its own again; 3 the key is gone and so was the host's liveness (a stall
# past HOST_DEAD_AFTER_S, or Redis lost its data): another host may have taken the session
# over and closed it meanwhile, so the host must check before taking it back; 0 another host
# holds it (it was taken over).
_RENEW = """
local alive = redis.call('EXISTS', KEYS[1]) == 1
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[2])
local owned = {}
for i = 2, #KEYS do
    local current = redis.call('HGET', KEYS[i], 'host')
    if current == ARGV[1] then
        redis.call('PEXPIRE', KEYS[i], ARGV[2])
        owned[i - 1] = 1
    elseif current == false and alive then
        redis.call('HSET', KEYS[i], 'host', ARGV[1], 'user', ARGV[2 + i])
        redis.call('PEXPIRE', KEYS[i], ARGV[2])
        owned[i - 1] = 2
    elseif current == false then
        owned[i - 1] = 3
    else
        owned[i - 1] = 0
    end
end
return owned
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


@dataclass(frozen=True, slots=True)
class Beat:
    """What a heartbeat learnt: the registry's data set, and sessions whose keys changed."""

    data_id: str
    #: Hosted sessions another host holds now: this host must give them up.
    lost: tuple[str, ...] = ()
    #: Hosted sessions whose keys had expired, set again.
    restored: tuple[str, ...] = ()
    #: Hosted sessions whose keys went while this host counted as dead: not set again.
    unsure: tuple[str, ...] = ()


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

    async def heartbeat(
        self, host: str, ttl_s: float, sessions: dict[str, int], name: str = ""
    ) -> Beat:
        """
        Refresh this host's liveness (as worker ``name``) and the entries of its ``sessions``
        (id -> user) for ``ttl_s``; reports which of them another host holds now.
        """
        return Beat("local")

    async def withdraw(self, host: str) -> None:
        """Drop the host's liveness at once (a drain): its sessions are nobody's from now."""
        return None

    async def alive(self, host: str) -> bool:
        return True

    async def hosts(self) -> list[str]:
        """Channels of every live host (other workers included)."""
        return []

    async def named(self, name: str) -> list[str]:
        """Channels of the live hosts of worker ``name``."""
        return []

    async def close(self) -> None:
        return None


T = TypeVar("T")


def _is_redis_error(exc: BaseException) -> bool:
    from redis.exceptions import RedisError

    return isinstance(exc, RedisError | OSError)


def _counted(
    operation: str,
) -> Callable[[Callable[..., Awaitable[T]]], Callable[..., Awaitable[T]]]:
    """Count a Redis call's failures (``hermes_redis_errors_total``); they still raise."""

    def decorate(method: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
        @wraps(method)
        async def counted(*args: Any, **kwargs: Any) -> T:
            try:
                return await method(*args, **kwargs)
            except Exception as exc:
                if _is_redis_error(exc):
                    families.count_redis_error(operation)
                raise

        return counted

    return decorate


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
        self._renew = self.redis.register_script(_RENEW)

    @_counted("register")
    async def register(self, session_id: str, user_id: int, host: str) -> None:
        """Record a new session (its id is fresh: nobody else can hold it)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(SESSION_KEY.format(session_id), mapping={"host": host, "user": user_id})
            pipe.pexpire(SESSION_KEY.format(session_id), _ttl_ms())
            await pipe.execute()

    @_counted("release")
    async def release(self, session_id: str, host: str) -> None:
        await self._release(keys=[SESSION_KEY.format(session_id)], args=[host])

    @_counted("lookup")
    async def lookup(self, session_id: str) -> HostEntry | None:
        values = await self.redis.hmget(SESSION_KEY.format(session_id), ["host", "user"])
        if values[0] is not None:
            return HostEntry(values[0].decode(), int(values[1]))
        # Redis may have restarted and lost the key: the database row knows the host.
        row = await database_sync_to_async(_stored_host)(session_id)
        return row

    @_counted("claim")
    async def claim(self, session_id: str, dead_host: str, host: str, user_id: int) -> bool:
        claimed = await self._claim(
            keys=[SESSION_KEY.format(session_id)], args=[dead_host, host, user_id, _ttl_ms()]
        )
        return bool(claimed)

    @_counted("heartbeat")
    async def heartbeat(
        self, host: str, ttl_s: float, sessions: dict[str, int], name: str = ""
    ) -> Beat:
        """
        One round trip: the liveness key and the hosted sessions' keys (one script), and
        Redis' run id (a restart changes it).
        """
        from redis.exceptions import NoScriptError

        ids = list(sessions)
        keys = [HOST_KEY.format(host), *(SESSION_KEY.format(session_id) for session_id in ids)]
        args = [host, int(ttl_s * 1000), name, *sessions.values()]
        async with self.redis.pipeline(transaction=False) as pipe:
            # EVALSHA itself: a pipeline holding a Script checks it with an extra SCRIPT
            # EXISTS round trip on every execute.
            pipe.evalsha(self._renew.sha, len(keys), *keys, *args)
            pipe.info("server")
            owned, info = await pipe.execute(raise_on_error=False)
        if isinstance(info, Exception):
            raise info
        if isinstance(owned, NoScriptError):
            owned = await self._renew(keys=keys, args=args)  # loads it (Redis restarted)
        elif isinstance(owned, Exception):
            raise owned
        codes = dict(zip(ids, owned, strict=True))
        return Beat(
            str(info.get("run_id", "")),
            lost=tuple(i for i, code in codes.items() if code == 0),
            restored=tuple(i for i, code in codes.items() if code == 2),
            unsure=tuple(i for i, code in codes.items() if code == 3),
        )

    async def withdraw(self, host: str) -> None:
        await self.redis.delete(HOST_KEY.format(host))

    @_counted("alive")
    async def alive(self, host: str) -> bool:
        return bool(await self.redis.exists(HOST_KEY.format(host)))

    @_counted("hosts")
    async def hosts(self) -> list[str]:
        prefix = HOST_KEY.format("")
        return [
            key.decode().removeprefix(prefix)
            async for key in self.redis.scan_iter(match=prefix + "*", count=100)
        ]

    async def named(self, name: str) -> list[str]:
        channels = await self.hosts()
        values = await self.redis.mget([HOST_KEY.format(c) for c in channels]) if channels else []
        wanted = name.encode()
        return [c for c, value in zip(channels, values, strict=True) if value == wanted]

    async def close(self) -> None:
        await self.redis.aclose()


def _ttl_ms() -> int:
    """Session keys live as long as their host's liveness key, renewed by the same beat."""
    return int(setting("HOST_DEAD_AFTER_S") * 1000)


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


class SyncRegistry:
    """
    The registry's ``alive`` for sync code in a process with no host (the admin, management
    commands), built from the same settings as the hosts' registry. Without Redis no other
    process' host is reachable: none counts as alive.
    """

    def __init__(self, redis_url: str):
        self.redis_url = redis_url

    @classmethod
    def from_settings(cls) -> SyncRegistry:
        return cls(registry_redis_url())

    def alive(self, host: str) -> bool:
        return async_to_sync(self._alive)(host)

    def named(self, name: str) -> list[str]:
        """Channels of the live hosts of worker ``name`` (none without Redis)."""
        return async_to_sync(self._named)(name)

    async def _named(self, name: str) -> list[str]:
        registry = build_registry(self.redis_url)
        try:
            return await registry.named(name)
        finally:
            await registry.close()

    async def _alive(self, host: str) -> bool:
        registry = build_registry(self.redis_url)
        try:
            return registry.shared and await registry.alive(host)
        finally:
            await registry.close()
