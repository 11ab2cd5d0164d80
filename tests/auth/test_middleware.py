import asyncio
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from gateway_app.auth import tokens
from gateway_app.auth.middleware import GatewayAuthStack, token_from_scope
from gateway_app.models import ApiToken

ALLOWED_ORIGIN = b"http://localhost:8000"
FOREIGN_ORIGIN = b"https://evil.example"
#: The Host a browser on ``ALLOWED_ORIGIN`` sends: that Origin is then the request's own.
HOST = (b"host", b"localhost:8000")


class WhoAmIConsumer(AsyncJsonWebsocketConsumer):
    """Refuses anonymous connections like the gateway consumer; otherwise reports the scope."""

    async def connect(self):
        user = self.scope["user"]
        if not user.is_authenticated:
            await self.close(code=4003)
            return
        await self.accept()
        await self.send_json(
            {
                "user": user.get_username(),
                "auth_method": self.scope["auth_method"],
                "api_token_id": self.scope["api_token_id"],
            }
        )


@pytest.fixture
def app():
    return GatewayAuthStack(WhoAmIConsumer.as_asgi())


@pytest.fixture
def user(transactional_db):
    return get_user_model().objects.create_user("alice", password="pw")


@pytest.fixture
def token(user):
    return ApiToken.mint(user, name="test")


async def handshake(app, path="/api/ws", headers=()):
    """Connect, read the greeting if accepted, disconnect; return (connected, code, hello)."""
    communicator = WebsocketCommunicator(app, path, headers=list(headers))
    connected, code = await communicator.connect(timeout=3)
    hello = await communicator.receive_json_from(timeout=3) if connected else None
    await communicator.disconnect(timeout=3)
    return connected, code, hello


def bearer(raw):
    return (b"authorization", b"Bearer " + raw.encode())


@database_sync_to_async
def session_cookie(user):
    client = Client()
    client.force_login(user)
    return (
        b"cookie",
        f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode(),
    )


@pytest.mark.django_db(transaction=True)
async def test_bearer_header_token_is_accepted(app, token):
    """Tests that a valid token in the Authorization header authenticates its user."""
    row, raw = token
    connected, _, hello = await handshake(app, headers=[bearer(raw)])
    assert connected
    assert hello == {"user": "alice", "auth_method": "token", "api_token_id": row.pk}


@pytest.mark.django_db(transaction=True)
async def test_query_string_token_is_accepted(app, token):
    """Tests that a valid token in the ?token= query string authenticates its user."""
    row, raw = token
    connected, _, hello = await handshake(app, path=f"/api/ws?token={raw}")
    assert connected
    assert hello["user"] == "alice"
    assert hello["auth_method"] == "token"


@pytest.mark.django_db(transaction=True)
async def test_revoked_token_is_refused(app, token):
    """Tests that a revoked token is refused before accept with close code 4003."""
    row, raw = token
    await ApiToken.objects.filter(pk=row.pk).aupdate(revoked_at=timezone.now())
    assert await handshake(app, headers=[bearer(raw)]) == (False, 4003, None)


@pytest.mark.django_db(transaction=True)
async def test_unknown_token_is_refused(app, token):
    """Tests that a token that was never minted is refused."""
    _, raw = token
    assert await handshake(app, headers=[bearer(raw + "x")]) == (False, 4003, None)


@pytest.mark.django_db(transaction=True)
async def test_token_of_inactive_user_is_refused(app, user, token):
    """Tests that a token stops working when its user is deactivated."""
    _, raw = token
    await get_user_model().objects.filter(pk=user.pk).aupdate(is_active=False)
    assert await handshake(app, headers=[bearer(raw)]) == (False, 4003, None)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("value", ["Basic {raw}", "Bearer", "Bearer {raw} extra", "{raw}"])
async def test_malformed_authorization_header_is_refused(app, token, value):
    """Tests that a malformed Authorization header refuses even with a valid ?token=."""
    _, raw = token
    header = (b"authorization", value.format(raw=raw).encode())
    result = await handshake(app, path=f"/api/ws?token={raw}", headers=[header])
    assert result == (False, 4003, None)


@pytest.mark.django_db(transaction=True)
async def test_missing_credentials_are_refused(app, user):
    """Tests that a connection with neither cookie nor token is refused with 4003."""
    assert await handshake(app, headers=[(b"origin", ALLOWED_ORIGIN)]) == (False, 4003, None)


@pytest.mark.django_db(transaction=True)
async def test_foreign_origin_is_refused_even_with_token(app, token):
    """Tests that a foreign Origin is refused before accept (4003), token or not."""
    _, raw = token
    headers = [HOST, (b"origin", FOREIGN_ORIGIN), bearer(raw)]
    assert await handshake(app, headers=headers) == (False, 4003, None)


@pytest.mark.django_db(transaction=True)
async def test_null_origin_is_refused(app, token):
    """Tests that an Origin header that names no host (``null``) is not treated as absent."""
    _, raw = token
    connected, _, _ = await handshake(app, headers=[(b"origin", b"null"), bearer(raw)])
    assert not connected


@pytest.mark.django_db(transaction=True)
async def test_allowed_origin_with_token_is_accepted(app, token):
    """Tests that a browser-style client from the request's own Origin may use a token."""
    _, raw = token
    headers = [HOST, (b"origin", ALLOWED_ORIGIN), bearer(raw)]
    connected, _, hello = await handshake(app, headers=headers)
    assert connected
    assert hello["auth_method"] == "token"


@pytest.mark.django_db(transaction=True)
async def test_no_origin_with_token_is_accepted(app, token):
    """Tests that a non-browser client (no Origin header) with a valid token is accepted."""
    _, raw = token
    connected, _, hello = await handshake(app, headers=[bearer(raw)])
    assert connected
    assert hello["user"] == "alice"


@pytest.mark.django_db(transaction=True)
async def test_no_origin_with_session_cookie_only_is_refused(app, user):
    """Tests that a session cookie does not authenticate a connection without Origin."""
    cookie = await session_cookie(user)
    assert await handshake(app, headers=[cookie]) == (False, 4003, None)


@pytest.mark.django_db(transaction=True)
async def test_no_origin_with_cookie_and_token_uses_the_token(app, user, token):
    """Tests that without Origin the token, not the ignored cookie, authenticates."""
    row, raw = token
    cookie = await session_cookie(user)
    connected, _, hello = await handshake(app, headers=[cookie, bearer(raw)])
    assert connected
    assert hello["auth_method"] == "token"
    assert hello["api_token_id"] == row.pk


@pytest.mark.django_db(transaction=True)
async def test_allowed_origin_with_session_cookie_is_accepted(app, user):
    """Tests that the dashboard's session cookie from the request's own Origin authenticates."""
    cookie = await session_cookie(user)
    connected, _, hello = await handshake(app, headers=[HOST, (b"origin", ALLOWED_ORIGIN), cookie])
    assert connected
    assert hello == {"user": "alice", "auth_method": "session", "api_token_id": None}


@pytest.mark.django_db(transaction=True)
async def test_foreign_origin_with_session_cookie_is_refused(app, user):
    """Tests that a cross-site page cannot ride the dashboard's session cookie."""
    cookie = await session_cookie(user)
    connected, _, _ = await handshake(app, headers=[(b"origin", FOREIGN_ORIGIN), cookie])
    assert not connected


@pytest.mark.django_db(transaction=True)
async def test_successful_token_auth_records_last_used(app, token):
    """Tests that a successful token connect sets last_used_at."""
    row, raw = token
    await handshake(app, headers=[bearer(raw)])
    refreshed = await ApiToken.objects.aget(pk=row.pk)
    assert refreshed.last_used_at is not None


@pytest.mark.django_db(transaction=True)
async def test_recent_last_used_is_not_rewritten(app, token):
    """Tests that last_used_at is left alone when it is under a minute old."""
    row, raw = token
    recent = timezone.now() - timedelta(seconds=10)
    await ApiToken.objects.filter(pk=row.pk).aupdate(last_used_at=recent)
    await handshake(app, headers=[bearer(raw)])
    assert (await ApiToken.objects.aget(pk=row.pk)).last_used_at == recent


@pytest.mark.django_db(transaction=True)
async def test_stale_last_used_is_rewritten(app, token):
    """Tests that last_used_at older than a minute is refreshed on connect."""
    row, raw = token
    stale = timezone.now() - timedelta(minutes=5)
    await ApiToken.objects.filter(pk=row.pk).aupdate(last_used_at=stale)
    await handshake(app, headers=[bearer(raw)])
    assert (await ApiToken.objects.aget(pk=row.pk)).last_used_at > stale


def test_header_token_takes_precedence_over_query_string():
    """Tests that the Authorization header is read before the query string."""
    scope = {
        "headers": [(b"authorization", b"bearer from-header")],
        "query_string": b"token=from-query",
    }
    assert token_from_scope(scope) == "from-header"


def test_repeated_query_token_is_ignored():
    """Tests that an ambiguous query string with two tokens yields no token."""
    assert token_from_scope({"headers": [], "query_string": b"token=a&token=b"}) is None


@pytest.mark.django_db(transaction=True)
async def test_token_connect_without_cookie_skips_the_session_lookup(app, token, monkeypatch):
    """Tests that a connection carrying no session cookie does not go through channels'
    session/auth middleware (a thread hop per connect that could only find no user)."""
    _, raw = token

    async def no_session_lookup(scope):
        raise AssertionError("the session cookie stack ran without a cookie")

    monkeypatch.setattr("channels.auth.get_user", no_session_lookup)
    connected, _, hello = await handshake(app, headers=[bearer(raw)])
    assert connected and hello["auth_method"] == "token"


@pytest.mark.django_db(transaction=True)
async def test_concurrent_connects_with_one_token_share_their_lookups(app, token, monkeypatch):
    """Tests that a reconnect storm (many connects with one token at once) resolves the
    token with two database lookups, and that every connect is accepted: the first, and one
    shared by every connect that arrived while it ran (none reuses a lookup older than
    itself, which could predate a revocation)."""
    _, raw = token
    lookups = []
    real = tokens._resolve

    async def counted(key_hash):
        lookups.append(key_hash)
        await asyncio.sleep(0.05)  # still in flight when the other connects arrive
        return await real(key_hash)

    monkeypatch.setattr(tokens, "_resolve", counted)
    results = await asyncio.gather(*(handshake(app, headers=[bearer(raw)]) for _ in range(8)))
    assert [connected for connected, _, _ in results] == [True] * 8
    assert len(lookups) == 2


@pytest.mark.django_db(transaction=True)
async def test_a_failed_shared_lookup_fails_every_waiter_and_the_next_connect_retries(
    token, monkeypatch
):
    """Tests that when the shared lookups raise, every concurrent caller sees the error and
    a later call queries again instead of reusing the failure."""
    _, raw = token
    calls = []

    async def broken(key_hash):
        calls.append(key_hash)
        await asyncio.sleep(0.01)
        raise RuntimeError("database down")

    monkeypatch.setattr(tokens, "_resolve", broken)
    results = await asyncio.gather(
        *(tokens.resolve_token(raw) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results) and len(calls) == 2
    monkeypatch.undo()
    assert (await tokens.resolve_token(raw)) is not None
