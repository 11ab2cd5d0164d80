"""The WebSocket consumer speaking PROTOCOL.md v1 (through WebsocketCommunicator)."""

import asyncio
import gc
import json
import logging

import pytest

from gateway_app.rpc import dispatch as dispatch_module
from gateway_app.rpc.codes import CLOSE_SERVICE_RESTART
from gateway_app.rpc.dispatch import method
from gateway_app.sessions.drain import RESTART_MESSAGE, worker_drain
from gateway_app.sessions.host import current_host
from gateway_app.transport import websocket
from gateway_app.transport.limits import user_connections
from tests.conftest import Connection

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


### Cleanup when the server cancels the consumer ###


@pytest.fixture
def blocking_method(limits):
    """``test.block``: a handler that never returns; ``started`` is set once it runs."""
    started = asyncio.Event()

    @method("test.block")
    async def block(ctx, params):
        started.set()
        await asyncio.Event().wait()

    limits(RPC_METHODS=[__name__])
    yield started
    dispatch_module.forget_module(__name__)


async def open_blocked(user, started):
    """A connection with a session, whose consumer is stuck in a handler, then left by its
    client (the disconnect waits behind the handler, as under daphne)."""
    connection = Connection(user)
    rpc = await connection.open()
    sid = (await rpc.call("session.create"))["session_id"]
    await rpc.send_text('{"jsonrpc":"2.0","id":"b","method":"test.block"}')
    await asyncio.wait_for(started.wait(), 10)
    await connection.communicator.send_input({"type": "websocket.disconnect", "code": 1001})
    return connection.communicator, sid


def close_lines(caplog):
    return [r.getMessage() for r in caplog.records if "connection closed" in r.getMessage()]


async def test_a_cancelled_consumer_still_detaches_releases_and_logs_once(
    fresh_host, alice, blocking_method, caplog
):
    """Tests that a consumer cancelled while a handler runs (daphne kills an application
    still running application_close_timeout after its client left) still detaches its
    sessions, frees its per-user slot and host entry, and writes one close line."""
    communicator, sid = await open_blocked(alice, blocking_method)
    host = current_host()
    assert user_connections.count(alice.pk) == 1
    with caplog.at_level(logging.INFO, "gateway_app.transport.websocket"):
        communicator.future.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(communicator.future, 10)
    assert host.sessions[sid].attached == set()
    assert host.sessions[sid].detached_at is not None
    assert user_connections.count(alice.pk) == 0
    assert host.connections == {}
    (line,) = close_lines(caplog)
    assert "user=alice" in line and "detached_sessions=1" in line
    assert "code=- " in line and line.endswith("ended=cancelled")


async def test_a_second_cancellation_does_not_cut_the_cleanup_short(
    fresh_host, alice, blocking_method, monkeypatch
):
    """Tests that the cleanup of a cancelled consumer runs to its end even when the server
    cancels again while it runs (daphne re-cancels every second)."""
    communicator, sid = await open_blocked(alice, blocking_method)
    host = current_host()
    entered, release = asyncio.Event(), asyncio.Event()
    connection_closed = host.connection_closed

    async def slow_connection_closed(ctx):
        entered.set()
        await release.wait()
        await connection_closed(ctx)

    monkeypatch.setattr(host, "connection_closed", slow_connection_closed)
    communicator.future.cancel()
    await asyncio.wait_for(entered.wait(), 10)
    communicator.future.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(communicator.future, 10)
    (cleanup,) = websocket._cleanups
    release.set()
    await asyncio.wait_for(cleanup, 10)
    assert host.sessions[sid].attached == set()
    assert host.connections == {}


async def test_a_normal_disconnect_writes_one_close_line(connect, alice, caplog):
    """Tests that a client's disconnect runs the cleanup once: one close line, with its
    code, and none more when the consumer then ends."""
    rpc = await connect(alice)
    with caplog.at_level(logging.INFO, "gateway_app.transport.websocket"):
        await rpc.connection.communicator.disconnect(code=1001, timeout=10)
    (line,) = close_lines(caplog)
    assert line.endswith("code=1001")
    assert user_connections.count(alice.pk) == 0


async def test_json_hooks_keep_the_base_class_contract():
    """Tests that the consumer's decode_json/encode_json still turn JSON text into Python
    objects and back, as AsyncJsonWebsocketConsumer's callers expect (JSON-RPC framing is
    the consumer's own, in receive)."""
    consumer = websocket.GatewayConsumer()
    assert await consumer.decode_json('{"a": [1, "é"]}') == {"a": [1, "é"]}
    assert json.loads(await consumer.encode_json({"a": [1, "é"]})) == {"a": [1, "é"]}


async def test_a_restart_message_closes_the_socket_with_1012_after_its_frames(connect, alice):
    """Tests that a drained connection gets the frames queued before it, then close 1012
    (service restart), so its client reconnects at once."""
    rpc = await connect(alice)
    communicator = rpc.connection.communicator
    host = current_host()
    (ctx,) = host.connections.values()
    await host.layer.send(ctx.channel_name, {"type": "session.event", "frame": "last"})
    await host.layer.send(ctx.channel_name, {"type": RESTART_MESSAGE})
    assert await communicator.receive_from(timeout=5) == "last"
    assert await communicator.receive_output(timeout=5) == {
        "type": "websocket.close",
        "code": CLOSE_SERVICE_RESTART,
    }


async def test_a_connection_opened_while_draining_is_closed_with_1012(fresh_host, alice):
    """Tests that a worker draining refuses new sockets with 1012: the client reconnects at
    once, to another worker."""
    worker_drain.draining = True
    connection = Connection(alice)
    connected, _ = await connection.communicator.connect(timeout=5)
    assert connected
    assert await connection.communicator.receive_output(timeout=5) == {
        "type": "websocket.close",
        "code": CLOSE_SERVICE_RESTART,
    }
    assert current_host() is None
