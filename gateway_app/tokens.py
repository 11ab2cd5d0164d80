"""
API tokens at run time: resolving a raw token to its user (cached per process, so a
reconnecting client costs no database query), and revoking one so that it stops working
everywhere and the sockets it opened are closed.

How a revocation travels: ``revoke_token`` marks the row and sends one message to every
worker's session host (group ``gateway.tokens``); each host drops the token from its cache
and closes (4003) the sockets of its own that the token opened, which ``RevocationWatch``
keeps by token. So a connect joins no group and costs the channel layer nothing. A
revocation the layer cannot carry (``manage.py gateway_token --revoke`` beside an in-memory
layer, a lost Redis) still takes effect within ``TOKEN_RECHECK_S``: cache entries live that
long, and each worker re-checks the tokens of its open sockets that often (one query for
all of them).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
import uuid
from datetime import timedelta

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.utils import timezone

from .conf import setting
from .models import ApiToken, hash_token
from .singleflight import SingleFlight

logger = logging.getLogger(__name__)

#: ``last_used_at`` is rewritten at most this often per token, to keep connects read-only.
LAST_USED_RESOLUTION = timedelta(minutes=1)
#: Group of every worker's session host; carries ``token.revoked {token_id}``.
REVOCATIONS_GROUP = "gateway.tokens"
#: Message type of a revocation, to hosts (with ``token_id``) and to sockets.
REVOKED_MESSAGE = "token.revoked"
#: At most this many resolved tokens are cached per process.
CACHE_SIZE = 10_000


class TokenCache:
    """
    Tokens resolved by this process, by hash, for ``TOKEN_RECHECK_S``; and the ids revoked
    here or announced to this worker, so a socket opened from a stale resolution is refused.
    Unknown tokens are not cached: garbage must not fill memory.
    """

    def __init__(self, clock=time.monotonic) -> None:
        self.clock = clock
        self._by_hash: dict[str, tuple[float, ApiToken]] = {}
        self._revoked: dict[int, float] = {}

    def get(self, key_hash: str) -> ApiToken | None:
        entry = self._by_hash.get(key_hash)
        if entry is None:
            return None
        expires, token = entry
        if expires <= self.clock() or token.pk in self._revoked:
            del self._by_hash[key_hash]
            return None
        return token

    def put(self, key_hash: str, token: ApiToken) -> None:
        if len(self._by_hash) >= CACHE_SIZE:
            # Oldest first (insertion order); expired or not, the next connect re-reads it.
            del self._by_hash[next(iter(self._by_hash))]
        self._by_hash[key_hash] = (self.clock() + self.ttl(), token)

    def forget(self, token_id: int) -> None:
        """The token was revoked: drop it, and remember the id as long as entries live."""
        now = self.clock()
        self._revoked[token_id] = now + self.ttl()
        for key_hash in [h for h, (_, t) in self._by_hash.items() if t.pk == token_id]:
            del self._by_hash[key_hash]
        for stale in [i for i, until in self._revoked.items() if until <= now]:
            del self._revoked[stale]

    def is_revoked(self, token_id: int) -> bool:
        until = self._revoked.get(token_id)
        return until is not None and until > self.clock()

    def clear(self) -> None:
        self._by_hash.clear()
        self._revoked.clear()

    @staticmethod
    def ttl() -> float:
        return float(setting("TOKEN_RECHECK_S"))


#: This process's cache (one per worker; the event loop is its only user).
cache = TokenCache()


#: Concurrent connects with one token (every tab of a user, a mobile app's retries) share
#: one lookup instead of each querying the database.
_lookups: SingleFlight[ApiToken | None] = SingleFlight()


async def resolve_token(raw: str) -> ApiToken | None:
    """The active token for a raw value, with its user loaded; ``None`` if it is not one."""
    key_hash = hash_token(raw)
    token = cache.get(key_hash)
    if token is not None:
        return token
    return await _lookups.run(key_hash, lambda: _resolve_and_cache(key_hash))


async def _resolve_and_cache(key_hash: str) -> ApiToken | None:
    token = await _resolve(key_hash)
    if token is not None:
        cache.put(key_hash, token)
    return token


@database_sync_to_async
def _resolve(key_hash: str) -> ApiToken | None:
    token = ApiToken.objects.active().select_related("user").filter(key_hash=key_hash).first()
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


@database_sync_to_async
def _still_active(token_ids: list[int]) -> set[int]:
    active = ApiToken.objects.active().filter(pk__in=token_ids, user__is_active=True)
    return set(active.values_list("pk", flat=True))


class RevocationWatch:
    """
    The open sockets of this worker by the API token they were authenticated with: whom a
    revocation closes here. Also the backstop for revocations the channel layer could not
    carry: the tokens are re-checked against the database every ``TOKEN_RECHECK_S``, in one
    query by one task.
    """

    def __init__(self) -> None:
        self._sockets: dict[int, set[str]] = {}
        self._task: asyncio.Task | None = None

    def track(self, token_id: int, channel_name: str) -> None:
        self._sockets.setdefault(token_id, set()).add(channel_name)
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            # A context of its own: the first socket's context must not outlive it here.
            self._task = loop.create_task(self._watch_forever(), context=contextvars.Context())

    def untrack(self, token_id: int, channel_name: str) -> None:
        channels = self._sockets.get(token_id)
        if channels is not None:
            channels.discard(channel_name)
            if not channels:
                del self._sockets[token_id]

    async def close_sockets(self, token_id: int) -> int:
        """Tell this worker's sockets of a revoked token to close (4003); returns how many."""
        channels = sorted(self._sockets.get(token_id, ()))
        layer = get_channel_layer()
        for channel_name in channels:
            await layer.send(channel_name, {"type": REVOKED_MESSAGE})
        return len(channels)

    async def _watch_forever(self) -> None:
        me = asyncio.current_task()
        while self._sockets and self._task is me:
            # Floored: 0 (no cache) must not turn this into a busy loop on the database.
            await asyncio.sleep(max(float(setting("TOKEN_RECHECK_S")), 0.05))
            try:
                await self.check()
            except Exception:
                logger.warning("token re-check failed", exc_info=True)
        if self._task is me:
            self._task = None

    async def check(self) -> list[int]:
        """Close the sockets of every watched token that no longer authenticates; returns
        their ids."""
        watched = list(self._sockets)
        if not watched:
            return []
        revoked = sorted(set(watched) - await _still_active(watched))
        for token_id in revoked:
            await revoked_elsewhere(token_id)
        return revoked

    def reset(self) -> None:
        """Forget every socket; the task ends at its next wake-up (tests, between loops)."""
        self._sockets.clear()
        self._task = None


#: This worker's watch over the tokens of its open sockets.
watch = RevocationWatch()


@database_sync_to_async
def _mark_revoked(token_id: int) -> bool:
    return bool(ApiToken.objects.active().filter(pk=token_id).update(revoked_at=timezone.now()))


async def revoke_token(token: ApiToken | int) -> bool:
    """
    Revoke an API token and close (4003) every open socket it authenticated, on every
    worker sharing the channel layer. Returns False if it was already revoked; the workers
    are told again either way.
    """
    token_id = token.pk if isinstance(token, ApiToken) else int(token)
    revoked = await _mark_revoked(token_id)
    cache.forget(token_id)
    layer = get_channel_layer()
    if layer is not None:
        # Every host, this worker's too, runs revoked_elsewhere() on it.
        # The id lets each host drop a copy of this message pushed again (a replay).
        message = {"type": REVOKED_MESSAGE, "id": uuid.uuid4().hex, "token_id": token_id}
        await layer.group_send(REVOCATIONS_GROUP, message)
    logger.info("API token %s revoked%s", token_id, "" if revoked else " (again)")
    return revoked


async def revoked_elsewhere(token_id: int) -> int:
    """
    A revocation reached this worker (from the hosts' group, or found by the re-check):
    forget the token, then close its sockets here. Both steps run without an await between
    the cache and the socket list, so a socket connecting at the same moment is either
    refused by the cache or closed from the list (see the consumer's ``_watch_token``).
    """
    cache.forget(token_id)
    return await watch.close_sockets(token_id)


def revoke_token_sync(token: ApiToken | int) -> bool:
    """``revoke_token`` for sync callers: the admin, management commands."""
    return async_to_sync(revoke_token)(token)
