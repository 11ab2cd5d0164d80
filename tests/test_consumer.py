"""The WebSocket consumer speaking PROTOCOL.md v1 (through WebsocketCommunicator)."""

import gc

import pytest

from gateway_app.sessions.host import current_host

pytestmark = pytest.mark.django_db(transaction=True)


async def test_first_frame_is_gateway_ready_with_skin_and_protocol(connect, alice):
    """Tests that the first frame after accept is gateway.ready with a skin and protocol 1."""
    rpc = await connect(alice)
    payload = rpc.ready["params"]["payload"]
    assert payload["protocol"] == 1
    assert isinstance(payload["skin"], dict)


async def test_ping_answers_pong(connect, alice):
    """Tests that gateway.ping answers {"pong": true}."""
    rpc = await connect(alice)
    assert await rpc.call("gateway.ping") == {"pong": True}


async def test_prompt_streams_words_then_completes(connect, alice):
    """Tests that prompt.submit streams the echo reply word by word and completes."""
    rpc = await connect(alice)
    session = await rpc.call("session.create", {"title": "t"})
    complete = await rpc.turn(session["session_id"], "hello there world")
    assert complete["text"] == "hello there world"
    assert complete["interrupted"] is False


async def test_disconnect_makes_no_thread_hop_for_database_cleanup(connect, alice, monkeypatch):
    """Tests that closing a socket skips channels' per-disconnect aclose_old_connections()
    thread hop (the gateway's ORM work closes its own stale connections) and still detaches."""

    async def no_hop():
        raise AssertionError("aclose_old_connections ran on disconnect")

    monkeypatch.setattr("channels.generic.websocket.aclose_old_connections", no_hop)
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    await rpc.connection.close()
    assert current_host().sessions[sid].attached == set()


async def test_a_closed_connection_is_freed_without_the_garbage_collector(connect, alice):
    """Tests that a closed connection leaves no reference cycle behind (the consumer, its
    outbox, guard and context are freed by reference counting at once), so connection churn
    does not feed the cyclic garbage collector."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        rpc = await connect(alice)
        await rpc.call("session.create")
        await rpc.connection.close()
        gc.collect()
        leaked = {type(o).__name__ for o in gc.garbage} & {
            "GatewayConsumer",
            "Outbox",
            "InputGuard",
            "CallContext",
        }
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert leaked == set()
