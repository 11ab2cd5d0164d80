"""Cross-site WebSocket hijacking: a cookie-authenticated socket is accepted only from the
request's own origin (scheme, host and port, as Django's CSRF Origin check computes it) or a
``CSRF_TRUSTED_ORIGINS`` entry; every other Origin is refused before accept, token or not,
and the refusal is logged with its reason (never the credential)."""

from __future__ import annotations

import logging

import pytest
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from gateway_app.auth.middleware import GatewayAuthStack
from gateway_app.models import ApiToken

pytestmark = pytest.mark.django_db(transaction=True)

HOST = (b"host", b"localhost:8000")
SAME_ORIGIN = "http://localhost:8000"


class Recorder(AsyncJsonWebsocketConsumer):
    """Accepts authenticated connections and reports how; records every scope it is given."""

    scopes: list[dict] = []

    async def connect(self):
        Recorder.scopes.append(self.scope)
        if not self.scope["user"].is_authenticated:
            await self.close(code=4003)
            return
        await self.accept()
        await self.send_json({"auth_method": self.scope["auth_method"]})


@pytest.fixture
def app():
    Recorder.scopes = []
    return GatewayAuthStack(Recorder.as_asgi())


@pytest.fixture
def token(alice):
    return ApiToken.mint(alice, name="t")[1]


@pytest.fixture
async def cookie(alice):
    @database_sync_to_async
    def login():
        client = Client()
        client.force_login(alice)
        return client.cookies[settings.SESSION_COOKIE_NAME].value

    return (b"cookie", f"{settings.SESSION_COOKIE_NAME}={await login()}".encode())


def origin(value: str) -> tuple[bytes, bytes]:
    return (b"origin", value.encode("latin1"))


def bearer(raw: str) -> tuple[bytes, bytes]:
    return (b"authorization", f"Bearer {raw}".encode())


async def handshake(app, headers, *, scheme: str | None = None, path: str = "/api/ws"):
    """Connect and disconnect; return the auth method of an accepted socket, else None."""
    communicator = WebsocketCommunicator(app, path, headers=list(headers))
    if scheme is not None:
        communicator.scope["scheme"] = scheme
    connected, code = await communicator.connect(timeout=3)
    method = (await communicator.receive_json_from(timeout=3))["auth_method"] if connected else None
    await communicator.disconnect(timeout=3)
    if not connected:
        assert code == 4003
    return method


@pytest.mark.parametrize(
    "foreign",
    [
        "http://127.0.0.1:31337",
        "http://localhost:9999",
        "https://localhost",
        "https://localhost:8000",
        "ftp://localhost",
        "ws://localhost:8000",
        "null",
        "",
        "localhost:8000",
        "http://localhost:8000/",
        "http://alice@localhost:8000",
        "http://localhost:8000:8000",
        "http://localhost:http",
        "http://localhost:8000\t",
    ],
)
async def test_session_cookie_from_another_origin_is_refused_before_auth(app, cookie, foreign):
    """Tests that the admin's cookie sent from another port, scheme or a malformed/opaque
    Origin is refused before accept, without reaching the application."""
    assert await handshake(app, [HOST, origin(foreign), cookie]) is None
    assert Recorder.scopes == []


async def test_session_cookie_from_the_same_origin_is_accepted(app, cookie):
    """Tests that the dashboard (page and socket on http://localhost:8000) uses its cookie."""
    assert await handshake(app, [HOST, origin(SAME_ORIGIN), cookie]) == "session"


@pytest.mark.parametrize(
    ("host", "page"),
    [("localhost", "http://localhost:80"), ("localhost:80", "http://localhost")],
)
async def test_default_port_compares_equal_written_or_not(app, cookie, host, page):
    """Tests that port 80 written in Host or Origin but not the other is the same origin."""
    assert await handshake(app, [(b"host", host.encode()), origin(page), cookie]) == "session"


async def test_a_host_outside_allowed_hosts_has_no_same_origin(app, cookie):
    """Tests that a rebound DNS name (Host and Origin agree, but the Host is not allowed)
    does not make its page the same origin."""
    headers = [(b"host", b"evil.example:8000"), origin("http://evil.example:8000"), cookie]
    assert await handshake(app, headers) is None


async def test_repeated_origin_headers_are_refused(app, cookie):
    """Tests that two Origin headers (one of them right) are refused as ambiguous."""
    headers = [HOST, origin(SAME_ORIGIN), origin("http://localhost:9999"), cookie]
    assert await handshake(app, headers) is None


async def test_trusted_origin_is_accepted(app, cookie, settings):
    """Tests that an exact CSRF_TRUSTED_ORIGINS entry is accepted from another host."""
    settings.CSRF_TRUSTED_ORIGINS = ["https://chat.example.com"]
    headers = [HOST, origin("https://chat.example.com"), cookie]
    assert await handshake(app, headers) == "session"


@pytest.mark.parametrize(
    ("page", "accepted"),
    [
        ("https://app.example.com", True),
        ("https://example.com", True),
        ("https://app.example.com:443", True),
        ("http://app.example.com", False),
        ("https://app.example.com:8443", False),
        ("https://example.com.evil.test", False),
        ("https://evilexample.com", False),
    ],
)
async def test_wildcard_trusted_origin_follows_django(app, cookie, settings, page, accepted):
    """Tests that ``https://*.example.com`` follows Django's rule: that domain and its
    subdomains are trusted, on its scheme and (default) port only."""
    settings.CSRF_TRUSTED_ORIGINS = ["https://*.example.com"]
    method = await handshake(app, [HOST, origin(page), cookie])
    assert method == ("session" if accepted else None)


async def test_https_behind_a_proxy_is_the_same_origin(app, cookie, settings):
    """Tests that with SECURE_PROXY_SSL_HEADER the proxy's X-Forwarded-Proto makes the
    request https, so the https page is its origin."""
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    headers = [(b"host", b"localhost"), (b"x-forwarded-proto", b"https")]
    assert await handshake(app, [*headers, origin("https://localhost"), cookie]) == "session"


async def test_http_page_cannot_reach_the_https_socket_behind_a_proxy(app, cookie, settings):
    """Tests that behind a TLS proxy the plain-http page of the same host is refused."""
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    headers = [(b"host", b"localhost"), (b"x-forwarded-proto", b"https")]
    assert await handshake(app, [*headers, origin("http://localhost"), cookie]) is None


async def test_forwarded_proto_is_ignored_without_secure_proxy_ssl_header(app, cookie):
    """Tests that a client's own X-Forwarded-Proto does not make the request https."""
    headers = [(b"host", b"localhost"), (b"x-forwarded-proto", b"https")]
    assert await handshake(app, [*headers, origin("https://localhost"), cookie]) is None


async def test_proxy_header_spelled_with_an_underscore_is_ignored(app, cookie, settings):
    """Tests that ``x_forwarded_proto`` is not read as ``X-Forwarded-Proto`` (both map to
    one META name; WSGI servers drop such headers for that reason)."""
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    headers = [(b"host", b"localhost"), (b"x_forwarded_proto", b"https")]
    assert await handshake(app, [*headers, origin("https://localhost"), cookie]) is None


@pytest.mark.parametrize(
    ("scheme", "page", "accepted"),
    [
        ("wss", "https://localhost:8000", True),
        ("wss", "http://localhost:8000", False),
        ("ws", "http://localhost:8000", True),
        ("ws", "https://localhost:8000", False),
    ],
)
async def test_websocket_scheme_maps_to_its_http_scheme(app, cookie, scheme, page, accepted):
    """Tests that a ``wss`` scope is an https request and ``ws`` an http one."""
    method = await handshake(app, [HOST, origin(page), cookie], scheme=scheme)
    assert method == ("session" if accepted else None)


async def test_token_with_a_foreign_origin_is_refused_before_lookup(app, token, monkeypatch):
    """Tests that a valid token sent from another origin is refused without a token lookup
    (a cross-site page must not learn whether a token is valid)."""

    async def no_lookup(raw):
        raise AssertionError("token looked up for a foreign origin")

    monkeypatch.setattr("gateway_app.auth.middleware.resolve_token", no_lookup)
    headers = [HOST, origin("http://localhost:9999"), bearer(token)]
    assert await handshake(app, headers) is None


async def test_token_without_origin_is_accepted(app, token):
    """Tests that a non-browser client (no Origin) authenticates with its token."""
    assert await handshake(app, [HOST, bearer(token)]) == "token"


async def test_token_from_the_same_origin_is_accepted(app, token):
    """Tests that a page of the gateway's own origin may use a token."""
    assert await handshake(app, [HOST, origin(SAME_ORIGIN), bearer(token)]) == "token"


async def test_session_cookie_without_origin_is_not_used(app, cookie):
    """Tests that a connection without Origin never authenticates by cookie."""
    assert await handshake(app, [HOST, cookie]) is None
    assert [scope["user"].is_authenticated for scope in Recorder.scopes] == [False]


### Why a socket was refused, in the gateway's log ###


def refusals(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("gateway_app")]


async def test_foreign_origin_refusal_logs_both_origins(app, cookie, caplog):
    """Tests that a refused Origin is logged at warning with the request's origin, and
    that the cookie is not."""
    caplog.set_level(logging.INFO, logger="gateway_app")
    await handshake(app, [HOST, origin("http://evil:1"), cookie])
    [record] = refusals(caplog)
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "refused websocket from" in message
    assert "http://evil:1" in message and SAME_ORIGIN in message
    assert cookie[1].decode().split("=", 1)[1] not in caplog.text


async def test_token_with_foreign_origin_refusal_is_logged_without_the_token(app, token, caplog):
    """Tests that a token sent from a foreign origin is logged as such, without its value."""
    caplog.set_level(logging.INFO, logger="gateway_app")
    await handshake(app, [HOST, origin("http://localhost:9999"), bearer(token)])
    [record] = refusals(caplog)
    assert "token with foreign origin" in record.getMessage()
    assert token not in caplog.text


async def test_missing_credentials_are_logged(app, caplog):
    """Tests that a connection with neither cookie nor token logs "no credentials"."""
    caplog.set_level(logging.INFO, logger="gateway_app")
    await handshake(app, [HOST])
    [record] = refusals(caplog)
    assert record.levelno == logging.INFO
    assert "no credentials" in record.getMessage()


async def test_unknown_token_is_logged_without_its_value(app, caplog):
    """Tests that an unknown token is logged at warning, without the token."""
    caplog.set_level(logging.INFO, logger="gateway_app")
    await handshake(app, [HOST], path="/api/ws?token=hgw_never-minted-secret")
    [record] = refusals(caplog)
    assert record.levelno == logging.WARNING
    assert "unknown or revoked token" in record.getMessage()
    assert "never-minted-secret" not in caplog.text


async def test_cookie_without_origin_is_logged(app, cookie, caplog):
    """Tests that a cookie-only connection without Origin logs why the cookie was ignored."""
    caplog.set_level(logging.INFO, logger="gateway_app")
    await handshake(app, [HOST, cookie])
    [record] = refusals(caplog)
    assert "session cookie without Origin" in record.getMessage()
    assert cookie[1].decode().split("=", 1)[1] not in caplog.text
