"""Browsers and other origins under real daphne: a real admin session cookie is refused from
another port of the same host and accepted from the page's own origin, and a ``?token=``
never reaches daphne's access log."""

from __future__ import annotations

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from tests.support.poll import eventually
from tests.support.servers import Database, GatewayServer

pytestmark = pytest.mark.live

PASSWORD = "origin-test-password-123"


@pytest.fixture(scope="module")
def database(tmp_path_factory) -> Database:
    database = Database(tmp_path_factory.mktemp("origins"))
    database.create_superuser("admin", PASSWORD)
    return database


@pytest.fixture(scope="module")
def server(database):
    with GatewayServer(database) as running:
        yield running


@pytest.fixture(scope="module")
def admin_cookie(server) -> str:
    """The ``Cookie`` header of the admin logged in through the real login form."""
    with httpx.Client(base_url=server.http_url, timeout=10) as client:
        client.get("/admin/login/")
        response = client.post(
            "/admin/login/",
            data={
                "username": "admin",
                "password": PASSWORD,
                "csrfmiddlewaretoken": client.cookies["csrftoken"],
                "next": "/admin/",
            },
        )
        assert response.status_code == 302
        return "; ".join(f"{name}={value}" for name, value in client.cookies.items())


async def test_admin_cookie_from_another_port_is_refused_with_403(server, admin_cookie):
    """Tests that a page on another port of the same host (another local service) cannot
    open a socket with the admin's cookie."""
    with pytest.raises(InvalidStatus) as refused:
        async with ws_connect(
            server.url,
            origin="http://127.0.0.1:31337",
            additional_headers={"Cookie": admin_cookie},
        ):
            pass
    assert refused.value.response.status_code == 403


async def test_admin_cookie_from_the_same_origin_is_accepted(server, admin_cookie):
    """Tests that the dashboard's own origin opens a socket with the admin's cookie."""
    async with ws_connect(
        server.url, origin=server.http_url, additional_headers={"Cookie": admin_cookie}
    ) as ws:
        assert '"gateway.ready"' in await ws.recv()


async def wait_for_log(server: GatewayServer, *needles: str) -> str:
    """The server log once it holds every needle (daphne writes lines as requests end)."""
    await eventually(
        lambda: all(needle in server.log() for needle in needles),
        within=10,
        interval=0.1,
        message=lambda: f"{needles} not in the server log:\n{server.log()}",
    )
    return server.log()


async def test_query_string_token_is_redacted_from_the_access_log(server, database):
    """Tests that a token sent as ``?token=`` (a plain HTTP GET, an accepted and a refused
    WebSocket) is logged as ``[redacted]`` while the requests are still logged."""
    token = database.token("alice")
    bad = "hgw_not-a-real-token-but-secret"
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as client:
        await client.get(f"/api/ws?token={token}&x=1")
    async with ws_connect(f"{server.url}?token={token}") as ws:
        await ws.recv()
    with pytest.raises(InvalidStatus):
        async with ws_connect(f"{server.url}?token={bad}"):
            pass
    log = await wait_for_log(
        server, "GET /api/ws?token=[redacted]&x=1", "WSCONNECT /api/ws", "WSREJECT /api/ws"
    )
    assert token not in log
    assert bad not in log
