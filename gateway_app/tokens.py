"""
API tokens at run time: resolving a raw token to its user (cached per process, so a
reconnecting client costs no database query), and revoking one so that it stops working
everywhere and the sockets it opened are closed.

How a revocation travels: ``revoke_token`` marks the row, tells every worker's session host
(group ``gateway.tokens``, so each drops the token from its cache) and then every socket the
token opened (group ``token.<id>``, each closes with 4003). A revocation the channel layer
cannot carry (``manage.py gateway_token --revoke`` beside an in-memory layer, a lost Redis)
still takes effect within ``TOKEN_RECHECK_S``: cache entries live that long, and open token
sockets re-check the database that often.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.utils import timezone

from .conf import setting
from .models import ApiToken, hash_token

logger = logging.getLogger(__name__)

#: ``last_used_at`` is rewritten at most this often per token, to keep connects read-only.
LAST_USED_RESOLUTION = timedelta(minutes=1)
#: Group of every worker's session host; carries ``token.revoked {token_id}``.
REVOCATIONS_GROUP = "gateway.tokens"
#: Message type of a revocation, to hosts (with ``token_id``) and to sockets.
REVOKED_MESSAGE = "token.revoked"
#: At most this many resolved tokens are cached per process.
CACHE_SIZE = 10_000


def token_group(token_id: int) -> str:
    """The channel-layer group of every connection authenticated by one API token."""
    return f"token.{int(token_id)}"


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


async def resolve_token(raw: str) -> ApiToken | None:
    """The active token for a raw value, with its user loaded; ``None`` if it is not one."""
    key_hash = hash_token(raw)
    token = cache.get(key_hash)
    if token is not None:
        return token
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
def token_is_active(token_id: int) -> bool:
    """Whether the token still authenticates (not revoked, user active): the database's word."""
    return ApiToken.objects.active().filter(pk=token_id, user__is_active=True).exists()


@database_sync_to_async
def _mark_revoked(token_id: int) -> bool:
    return bool(ApiToken.objects.active().filter(pk=token_id).update(revoked_at=timezone.now()))


async def revoke_token(token: ApiToken | int) -> bool:
    """
    Revoke an API token and close (4003) every open socket it authenticated, on every
    worker sharing the channel layer. Returns False if it was already revoked; the workers
    and sockets are told again either way.
    """
    token_id = token.pk if isinstance(token, ApiToken) else int(token)
    revoked = await _mark_revoked(token_id)
    cache.forget(token_id)
    layer = get_channel_layer()
    if layer is not None:
        # Workers first, sockets second: a socket that joins its token group after the
        # second message finds the id already announced to its worker (see the consumer).
        await layer.group_send(REVOCATIONS_GROUP, {"type": REVOKED_MESSAGE, "token_id": token_id})
        await layer.group_send(token_group(token_id), {"type": REVOKED_MESSAGE})
    logger.info("API token %s revoked%s", token_id, "" if revoked else " (again)")
    return revoked


def revoke_token_sync(token: ApiToken | int) -> bool:
    """``revoke_token`` for sync callers: the admin, management commands."""
    return async_to_sync(revoke_token)(token)
