"""The gateway under real daphne, talked to with the ``websockets`` client."""

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from tests.support.live import ws_rpc
from tests.support.poll import eventually
from tests.support.procs import assert_gone_sync
from tests.support.servers import Database, GatewayServer

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    return Database(tmp_path_factory.mktemp("daphne"))


@pytest.fixture(scope="module")
def server(database):
    with GatewayServer(database) as running:
        yield running
    assert_gone_sync([running.pid], within=0)


@pytest.fixture(scope="module")
def token(database):
    return database.token("alice")


async def test_real_daphne_serves_a_full_session(server, token):
    """Tests that create, stream, slash and close work over a real daphne socket."""
    async with ws_rpc(server.url, token) as rpc:
        assert rpc.ready["params"]["payload"]["protocol"] == 1
        sid = (await rpc.call("session.create", {"title": "live"}))["session_id"]
        complete = await rpc.turn(sid, "streamed over daphne")
        assert "".join(rpc.deltas(complete["turn_id"])) == "streamed over daphne"
        output = await rpc.call("slash.exec", {"session_id": sid, "command": "/status"})
        assert sid in output["output"]
        assert len(server.slash_workers()) == 1
        await rpc.call("session.close", {"session_id": sid})
        assert server.slash_workers() == set()


async def test_multi_line_frame_over_daphne(server, token):
    """Tests that a frame with several requests gets one response frame per request."""
    async with ws_rpc(server.url, token) as rpc:
        await rpc.send_text(
            '{"jsonrpc":"2.0","id":1,"method":"gateway.ping"}\n\n'
            '{"jsonrpc":"2.0","id":2,"method":"gateway.ping"}\n'
        )
        assert (await rpc.response(1))["result"] == {"pong": True}
        assert (await rpc.response(2))["result"] == {"pong": True}


async def test_connection_without_credentials_is_refused_with_403(server):
    """Tests that a WebSocket without credentials is refused before accept (HTTP 403)."""
    with pytest.raises(InvalidStatus) as refused:
        async with ws_connect(server.url):
            pass
    assert refused.value.response.status_code == 403


async def test_bad_token_is_refused_with_403(server):
    """Tests that an unknown token is refused before accept (HTTP 403)."""
    with pytest.raises(InvalidStatus) as refused:
        async with ws_connect(server.url + "?token=hgw_not-a-token"):
            pass
    assert refused.value.response.status_code == 403


async def test_foreign_origin_is_refused_with_403(server, token):
    """Tests that an Origin outside ALLOWED_HOSTS is refused even with a valid token."""
    with pytest.raises(InvalidStatus) as refused:
        async with ws_connect(server.url + f"?token={token}", origin="http://evil.example"):
            pass
    assert refused.value.response.status_code == 403


async def test_stray_websocket_path_is_refused(server, token):
    """Tests that a WebSocket to a path other than /api/ws is refused."""
    with pytest.raises(InvalidStatus):
        async with ws_connect(server.url.replace("/api/ws", "/other") + f"?token={token}"):
            pass


async def test_disconnect_logs_one_close_line_with_counters(server, token):
    """Tests that each closed connection writes one structured line with its counters."""
    async with ws_rpc(server.url, token) as rpc:
        await rpc.send_text("not json")
        await rpc.read_one()
        await rpc.call("session.create")
    lines = await eventually(
        lambda: [line for line in server.log().splitlines() if "parse_errors=1" in line],
        interval=0.1,
    )
    assert len(lines) == 1
    for counter in ("messages=2", "dispatch_crashes=0", "send_failures=0", "detached_sessions=1"):
        assert counter in lines[0]
    assert "reaped=" in lines[0]
