"""
API tokens at run time: resolving a raw token to its user (one indexed query per connect,
shared by concurrent connects with the same token, its SQL built once by ``lookup``), and
revoking one so that it stops working everywhere and the sockets it opened are closed.

How a revocation travels: ``revoke_token`` marks the row and sends one message to every
worker's session host (group ``gateway.tokens``); each host remembers the id and closes
(4003) the sockets of its own that the token opened, which ``RevocationWatch`` keeps by
token. So a connect joins no group and costs the channel layer nothing. A revocation the
layer cannot carry (``manage.py gateway_token --revoke`` beside an in-memory layer, a lost
Redis) refuses the next connect at once (connects always read the row) and closes open
sockets within ``TOKEN_RECHECK_S``: each worker re-checks the tokens of its open sockets
that often (one query for all of them).
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.utils import timezone

from ..conf import setting
from ..models import ApiToken, hash_token
from ..sessions.cluster import messages
from ..singleflight import SingleFlight
from .lookup import unrevoked_token
from .socketwatch import SocketWatch

logger = logging.getLogger(__name__)

#: ``last_used_at`` is rewritten at most this often per token, to keep connects read-only.
LAST_USED_RESOLUTION = timedelta(minutes=1)
#: Group of every worker's session host; carries ``token.revoked {token_id}`` and the
#: login messages of ``logins``.
REVOCATIONS_GROUP = "gateway.tokens"
#: Message type of a revocation, to hosts (with ``token_id``) and to sockets.
REVOKED_MESSAGE = messages.TOKEN_REVOKED


class RecentRevocations:
    """
    Ids of tokens revoked here or announced to this worker, for ``TOKEN_RECHECK_S``: a
    socket authenticated just before the announcement, whose consumer lists itself after
    it, is refused by them (see the consumer's ``_watch_token``).
    """

    def __init__(self, clock=time.monotonic) -> None:
        self.clock = clock
        self._revoked: dict[int, float] = {}

    def forget(self, token_id: int) -> None:
        """The token was revoked: remember the id for a while."""
        now = self.clock()
        self._revoked[token_id] = now + max(setting("TOKEN_RECHECK_S"), 0.05)
        for stale in [i for i, until in self._revoked.items() if until <= now]:
            del self._revoked[stale]

    def is_revoked(self, token_id: int) -> bool:
        until = self._revoked.get(token_id)
        return until is not None and until > self.clock()

    def clear(self) -> None:
        self._revoked.clear()


#: This process's recent revocations (one per worker; the event loop is its only user).
recent = RecentRevocations()


#: Concurrent connects with one token (every tab of a user, a mobile app's retries) share
#: lookups instead of each querying the database.
_lookups: SingleFlight[ApiToken | None] = SingleFlight()


async def resolve_token(raw: str) -> ApiToken | None:
    """
    The active token for a raw value, with its user loaded; ``None`` if it is not one. Read
    from the database for every connect (never from an earlier connect's answer), so a
    revocation committed before the connect, by any process, refuses it.
    """
    key_hash = hash_token(raw)
    return await _lookups.run(key_hash, lambda: _resolve(key_hash), fresh=True)


@database_sync_to_async
def _resolve(key_hash: str) -> ApiToken | None:
    token = unrevoked_token(key_hash)
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


class RevocationWatch(SocketWatch):
    """
    The open sockets of this worker by the API token they were authenticated with: whom a
    revocation closes here. Its tokens are re-checked against the database every
    ``TOKEN_RECHECK_S``, in one query by one task.
    """

    close_message = REVOKED_MESSAGE
    what = "token"

    async def check(self) -> list[int]:
        """Close the sockets of every watched token that no longer authenticates (revoked,
        deleted, its user inactive); returns their ids."""
        watched = list(self._sockets)
        if not watched:
            return []
        revoked = sorted(set(watched) - await _still_active(watched))
        for token_id in revoked:
            await revoked_elsewhere(token_id)
        return revoked


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
    recent.forget(token_id)
    layer = get_channel_layer()
    if layer is not None:
        # Every host, this worker's too, runs revoked_elsewhere() on it.
        await layer.group_send(REVOCATIONS_GROUP, messages.token_revoked(token_id))
    logger.info("API token %s revoked%s", token_id, "" if revoked else " (again)")
    return revoked


async def revoked_elsewhere(token_id: int) -> int:
    """
    A revocation reached this worker (from the hosts' group, or found by the re-check):
    remember it, then close the token's sockets here. Both steps run without an await
    between, so a socket connecting at the same moment is either refused as recently revoked
    or closed from the list (see the consumer's ``_watch_token``).
    """
    recent.forget(token_id)
    return await watch.close_sockets(token_id)


def revoke_token_sync(token: ApiToken | int) -> bool:
    """``revoke_token`` for sync callers: the admin, management commands."""
    return async_to_sync(revoke_token)(token)
