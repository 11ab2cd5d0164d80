"""
WebSocket authentication for ``/api/ws``: a Django session cookie (browsers, whose ``Origin``
must be an allowed host) or an API token (``Authorization: Bearer`` header or ``?token=``).
A connection that resolves to no user keeps ``AnonymousUser``; the consumer refuses it.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.middleware import BaseMiddleware
from channels.security.websocket import AllowedHostsOriginValidator, OriginValidator
from django.conf import settings
from django.contrib.auth.models import AnonymousUser

from .tokens import resolve_token

logger = logging.getLogger(__name__)

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


class TokenAuthMiddleware(BaseMiddleware):
    """
    Authenticates by API token when the session cookie did not, and records how in
    ``scope["auth_method"]`` ("session", "token" or None). Sits inside ``SessionCookieAuth``.
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
            token = await resolve_token(raw)
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


class SessionCookieAuth:
    """
    Channels' ``AuthMiddlewareStack``, entered only when the request carries Django's
    session cookie. Without one it could only find ``AnonymousUser``, after a thread hop and
    a database-connection check on every connect: token clients skip all of that.
    """

    def __init__(self, inner):
        self.inner = inner
        self.cookie_stack = AuthMiddlewareStack(inner)

    async def __call__(self, scope, receive, send):
        if _has_session_cookie(scope):
            return await self.cookie_stack(scope, receive, send)
        return await self.inner(dict(scope, user=AnonymousUser()), receive, send)


def _has_session_cookie(scope) -> bool:
    name = settings.SESSION_COOKIE_NAME.encode("latin1") + b"="
    return any(name in cookie for cookie in _headers(scope, b"cookie"))


def GatewayAuthStack(inner):
    """The one wrapper around the WebSocket router: Origin check, session cookie, API token."""
    return GatewayOriginValidator(SessionCookieAuth(TokenAuthMiddleware(inner)))
