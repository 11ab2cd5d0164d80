"""Logins end everywhere at once on real daphne: the admin's logout on one worker closes a
cookie socket on another (Redis layer), and a token revoked by another process is refused
by the next connect (no per-process window)."""

import asyncio
import json
import subprocess

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from tests.support.live import ws_rpc
from tests.support.rpc import RpcClient
from tests.support.servers import PYTHON, REPO, Database, GatewayServer, RedisServer

pytestmark = pytest.mark.live

#: Far beyond the test's waits: only a message can close a socket in time.
SLOW_RECHECK = {"HERMES_GATEWAY_OPTIONS": json.dumps({"TOKEN_RECHECK_S": 600})}


@pytest.fixture
def database(tmp_path):
    return Database(tmp_path)


def admin_login(server, username, password):
    """An httpx client logged in to the admin through its login form."""
    client = httpx.Client(base_url=server.http_url, timeout=10)
    client.get("/admin/login/")
    response = client.post(
        "/admin/login/",
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": client.cookies["csrftoken"],
            "next": "/admin/",
        },
        headers={"Referer": server.http_url + "/admin/login/"},
    )
    assert response.status_code == 302
    return client


def admin_logout(server, client):
    """POST the admin's logout view with the browser's cookie and CSRF token."""
    response = client.post(
        "/admin/logout/",
        data={"csrfmiddlewaretoken": client.cookies["csrftoken"]},
        headers={"Referer": server.http_url + "/admin/"},
    )
    assert response.status_code == 200, response.status_code


async def test_admin_logout_on_one_worker_closes_the_cookie_socket_on_another(database, tmp_path):
    """Tests that logging out through the admin on worker A closes (4003) the socket the
    same login session opened on worker B at once, through the Redis layer."""
    database.create_superuser("root", "root-pass-123")
    with RedisServer() as redis_server:
        env = {**SLOW_RECHECK, "REDIS_URL": redis_server.url}
        a = GatewayServer(database, env={**env, "HERMES_WORKER_NAME": "A"}).start()
        b = GatewayServer(database, env={**env, "HERMES_WORKER_NAME": "B"}).start()
        try:
            client = await asyncio.to_thread(admin_login, a, "root", "root-pass-123")
            headers = {
                "Origin": b.http_url,
                "Cookie": f"sessionid={client.cookies['sessionid']}",
            }
            async with ws_connect(b.url, additional_headers=headers) as websocket:
                rpc = RpcClient(websocket.send, websocket.recv)
                await rpc.wait_ready()
                assert await rpc.call("gateway.ping") == {"pong": True}
                await asyncio.to_thread(admin_logout, a, client)
                await asyncio.wait_for(websocket.wait_closed(), 10)
                assert websocket.close_code == 4003
            client.close()
        finally:
            a.stop()
            b.stop()


async def test_a_token_revoked_by_another_process_is_refused_by_the_next_connect(database):
    """Tests that ``gateway_token --revoke`` in another process, which no channel layer
    connects to the worker, refuses the token's next connect at once although the worker
    resolved it a moment before."""
    token = database.token("alice")
    with GatewayServer(database, env=SLOW_RECHECK) as server:
        async with ws_rpc(server.url, token) as rpc:
            assert await rpc.call("gateway.ping") == {"pong": True}
        await asyncio.to_thread(
            subprocess.run,
            [PYTHON, "manage.py", "gateway_token", "alice", "--revoke", token],
            cwd=REPO,
            env=database.env,
            check=True,
            capture_output=True,
            timeout=60,
        )
        with pytest.raises(InvalidStatus) as refused:
            async with ws_rpc(server.url, token):
                pass
        assert refused.value.response.status_code == 403
