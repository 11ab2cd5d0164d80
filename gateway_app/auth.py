"""
WebSocket authentication for ``/api/ws``: a Django session cookie (browsers, whose ``Origin``
must be an allowed host) or an API token (``Authorization: Bearer`` header or ``?token=``).
A connection that resolves to no user keeps ``AnonymousUser``; the consumer refuses it.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from urllib.parse import parse_qs

from asgiref.sync import async_to_sync
from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.middleware import BaseMiddleware
from channels.security.websocket import AllowedHostsOriginValidator, OriginValidator
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone

from .models import ApiToken, hash_token

logger = logging.getLogger(__name__)

#: ``last_used_at`` is rewritten at most this often per token, to keep connects read-only.
LAST_USED_RESOLUTION = timedelta(minutes=1)
#: Longer credentials are refused without a database query (minted tokens are ~47 chars).
MAX_TOKEN_LENGTH = 256


def _headers(scope, name: bytes) -> list[bytes]:
    return [value for key, value in scope.get("headers", ()) if key.lower() == name]


def _client(scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "unknown client"


def token_from_scope(scope) -> str | None:
    """
    Return the raw token from the ``Authorization: Bearer`` header, else from the ``token``
    query parameter. A malformed or repeated credential gives ``None``, never a fallback.
    """
    authorization = _headers(scope, b"authorization")
    if authorization:
        if len(authorization) != 1:
            return None
        parts = authorization[0].decode("latin1").split()
        if len(parts) != 2 or parts[0].lower() != "bearer":
            return None
        raw = parts[1]
    else:
        query = parse_qs(scope.get("query_string", b"").decode("latin1"))
        values = query.get("token", [])
        if len(values) != 1:
            return None
        raw = values[0].strip()
    if not raw or len(raw) > MAX_TOKEN_LENGTH:
        return None
    return raw


@database_sync_to_async
def _resolve_token(raw: str) -> ApiToken | None:
    token = (
        ApiToken.objects.active().select_related("user").filter(key_hash=hash_token(raw)).first()
    )
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


def token_group(token_id: int) -> str:
    """The channel-layer group of every connection authenticated by one API token."""
    return f"token.{int(token_id)}"


@database_sync_to_async
def token_is_active(token_id: int) -> bool:
    """Whether the token still authenticates (not revoked, user active)."""
    return ApiToken.objects.active().filter(pk=token_id, user__is_active=True).exists()


@database_sync_to_async
def _mark_revoked(token_id: int) -> bool:
    return bool(ApiToken.objects.active().filter(pk=token_id).update(revoked_at=timezone.now()))


async def revoke_token(token: ApiToken | int) -> bool:
    """
    Revoke an API token and close (4003) every open socket it authenticated, on every
    worker sharing the channel layer. Returns False if it was already revoked; the sockets
    are told again either way.
    """
    token_id = token.pk if isinstance(token, ApiToken) else int(token)
    revoked = await _mark_revoked(token_id)
    layer = get_channel_layer()
    if layer is not None:
        await layer.group_send(token_group(token_id), {"type": "token.revoked"})
    logger.info("API token %s revoked%s", token_id, "" if revoked else " (again)")
    return revoked


def revoke_token_sync(token: ApiToken | int) -> bool:
    """``revoke_token`` for sync callers: the admin, management commands."""
    return async_to_sync(revoke_token)(token)


class TokenAuthMiddleware(BaseMiddleware):
    """
    Authenticates by API token when the session cookie did not, and records how in
    ``scope["auth_method"]`` ("session", "token" or None). Sits inside ``AuthMiddlewareStack``.
    """

    async def __call__(self, scope, receive, send):
        scope = dict(scope, auth_method=None, api_token_id=None)
        user = scope.get("user")
        if user is not None and user.is_authenticated:
            # A cookie only counts when a browser sent it from an allowed Origin; a client
            # without Origin must present a token (cross-site hijack protection).
            if scope.get("origin_checked") is True:
                scope["auth_method"] = "session"
                return await self.inner(scope, receive, send)
            user = None
        scope["user"] = user if user is not None else AnonymousUser()
        raw = token_from_scope(scope)
        if raw is not None:
            token = await _resolve_token(raw)
            if token is None:
                logger.info(
                    "refused a token (unknown, revoked or inactive user) from %s", _client(scope)
                )
            else:
                scope["user"] = token.user
                scope["auth_method"] = "token"
                scope["api_token_id"] = token.pk
        return await self.inner(scope, receive, send)


def allowed_hosts_origins() -> list[str]:
    """The hosts ``AllowedHostsOriginValidator`` would accept right now (DEBUG defaults too)."""
    # Built through channels' own factory so its ALLOWED_HOSTS/DEBUG logic is used unchanged.
    return AllowedHostsOriginValidator(None).allowed_origins


class GatewayOriginValidator(OriginValidator):
    """
    Channels' ``OriginValidator`` over ``ALLOWED_HOSTS``, except that a connection without an
    ``Origin`` header (a non-browser client) is let through with ``scope["origin_checked"]``
    False, so that only a token can authenticate it. Like channels' factory, it reads
    ``ALLOWED_HOSTS`` when built unless ``allowed_origins`` is given.
    """

    def __init__(self, application, allowed_origins: list[str] | None = None):
        if allowed_origins is None:
            allowed_origins = allowed_hosts_origins()
        super().__init__(application, allowed_origins)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not _headers(scope, b"origin"):
            return await self.application(dict(scope, origin_checked=False), receive, send)
        return await super().__call__(dict(scope, origin_checked=True), receive, send)


def GatewayAuthStack(inner):
    """The one wrapper around the WebSocket router: Origin check, session cookie, API token."""
    return GatewayOriginValidator(AuthMiddlewareStack(TokenAuthMiddleware(inner)))
