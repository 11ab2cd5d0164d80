"""
WebSocket authentication for ``/api/ws``: a Django session cookie (browsers, whose ``Origin``
must be the request's own origin or a trusted one) or an API token (``Authorization: Bearer``
header or ``?token=``). A connection that resolves to no user keeps ``AnonymousUser``; the
consumer refuses it, and the reason is logged here.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.middleware import BaseMiddleware
from django.conf import settings
from django.contrib.auth.models import AnonymousUser

from ..rpc.codes import CLOSE_FORBIDDEN
from .origins import Origin, origin_allowed, request_origin
from .tokens import resolve_token

logger = logging.getLogger(__name__)

#: Longer credentials are refused without a database query (minted tokens are ~47 chars).
MAX_TOKEN_LENGTH = 256
#: Longest part of a client's Origin header quoted in a log line.
LOGGED_ORIGIN_CHARS = 200


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
        cookie_ignored = False
        if user is not None and user.is_authenticated:
            # A cookie only counts when a browser sent it from an allowed Origin; a client
            # without Origin must present a token (cross-site hijack protection).
            if scope.get("origin_checked") is True:
                scope["auth_method"] = "session"
                return await self.inner(scope, receive, send)
            user = None
            cookie_ignored = True
        scope["user"] = user if user is not None else AnonymousUser()
        raw = token_from_scope(scope)
        if raw is None:
            if cookie_ignored:
                logger.info(
                    "refused websocket from %s: session cookie without Origin (browsers "
                    "send one; other clients need a token)",
                    _client(scope),
                )
            else:
                logger.info("refused websocket from %s: no credentials", _client(scope))
        else:
            token = await resolve_token(raw)
            if token is None:
                logger.warning(
                    "refused websocket from %s: unknown or revoked token (or inactive user)",
                    _client(scope),
                )
            else:
                scope["user"] = token.user
                scope["auth_method"] = "token"
                scope["api_token_id"] = token.pk
        return await self.inner(scope, receive, send)


class GatewayOriginValidator:
    """
    Refuses, before accept, a WebSocket whose ``Origin`` is neither the request's own origin
    nor in ``CSRF_TRUSTED_ORIGINS`` (``gateway_app.auth.origins``), whatever its credentials. One
    without ``Origin`` (a non-browser client) passes with ``scope["origin_checked"]`` False,
    so that only a token can authenticate it.
    """

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            raise ValueError(f"GatewayOriginValidator is for websocket scopes, not {scope['type']}")
        origins = _headers(scope, b"origin")
        if not origins:
            return await self.application(dict(scope, origin_checked=False), receive, send)
        own = request_origin(scope)
        # Two Origin headers are ambiguous: refused even when one of them is right.
        if len(origins) == 1 and origin_allowed(origins[0].decode("latin1"), own):
            return await self.application(dict(scope, origin_checked=True), receive, send)
        _log_origin_refusal(scope, origins, own)
        await _deny(receive, send)


def _log_origin_refusal(scope, origins: list[bytes], own: Origin | None) -> None:
    """Say why, and whether a token came along; neither the token nor a cookie is logged."""
    shown = ", ".join(_quoted(value) for value in origins)
    expected = str(own) if own else "unknown (Host missing or not in ALLOWED_HOSTS)"
    if _headers(scope, b"authorization") or token_from_scope(scope) is not None:
        logger.warning(
            "refused websocket from %s: token with foreign origin %s (the request's origin is %s)",
            _client(scope),
            shown,
            expected,
        )
    else:
        logger.warning(
            "refused websocket from %s: origin %s is not the request's origin %s nor trusted",
            _client(scope),
            shown,
            expected,
        )


def _quoted(value: bytes) -> str:
    """A client's header value made safe for one log line (escaped, truncated)."""
    text = ascii(value.decode("latin1")[:LOGGED_ORIGIN_CHARS])[1:-1]
    return text or '""'


async def _deny(receive, send) -> None:
    """Refuse the handshake before accept (the server answers HTTP 403)."""
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close", "code": CLOSE_FORBIDDEN})


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
