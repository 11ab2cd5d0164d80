"""Teardown that always finishes, and a host channel that stays responsive while it runs."""

import asyncio

import pytest
from channels.layers import get_channel_layer

from gateway_app.models import GatewaySession
from gateway_app.rpc.context import CallContext, Caller
from gateway_app.sessions.cluster import messages
from gateway_app.sessions.host import current_host, get_host
from gateway_app.sessions.state import Phase
from gateway_app.slash.client import SlashClient

pytestmark = pytest.mark.django_db(transaction=True)


async def layer_down(group, channel):
    raise ConnectionError("redis is down")


async def open_context(host, user):
    """A connection to the host without a socket: its own channel name, registered."""
    ctx = CallContext(Caller(user.pk, user.username), await host.layer.new_channel())
    host.connection_opened(ctx)
    return ctx


async def test_close_finishes_when_the_layer_cannot_discard_and_resume_cold_starts(
    connect, alice, monkeypatch
):
    """Tests that a teardown whose group_discard fails still finalizes the session, and
    that a later resume cold-starts it instead of waiting for a teardown that never ends."""
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    await rpc.turn(sid, "kept")
    host = current_host()
    session = host.sessions[sid]
    monkeypatch.setattr(host.layer, "group_discard", layer_down)
    assert await rpc.call("session.close", {"session_id": sid}) == {"closed": True}
    assert session.phase is Phase.CLOSED and session.closed.is_set()
    assert sid not in host.sessions
    await host.store.flush()
    assert (await GatewaySession.objects.aget(pk=sid)).status == "closed"
    resumed = await rpc.call("session.resume", {"session_id": sid})
    assert resumed["status"] == "live" and host.sessions[sid] is not session


async def test_connection_closed_detaches_every_session_when_the_layer_fails(
    alice, fresh_host, monkeypatch
):
    """Tests that a failing group_discard on disconnect still detaches every session the
    connection was attached to (each is then reapable), not only those before the failure."""
    host = await get_host()
    ctx = await open_context(host, alice)
    sessions = [await host.create(ctx, "t") for _ in range(3)]
    monkeypatch.setattr(host.layer, "group_discard", layer_down)
    await host.connection_closed(ctx)
    assert [s.status for s in sessions] == ["detached"] * 3
    assert not ctx.attached and all(s.detached_at is not None for s in sessions)


async def test_a_teardown_whose_caller_is_cancelled_still_finishes(alice, fresh_host, monkeypatch):
    """Tests that cancelling the caller of a teardown half way (a dropped socket, a
    shutdown) does not leave the session CLOSING: the teardown runs to its end."""
    host = await get_host()
    ctx = await open_context(host, alice)
    session = await host.create(ctx, "t")
    discarding, gate = asyncio.Event(), asyncio.Event()

    async def slow_discard(group, channel):
        discarding.set()
        await gate.wait()

    monkeypatch.setattr(host.layer, "group_discard", slow_discard)
    closing = asyncio.create_task(host.close(ctx, session.id))
    await asyncio.wait_for(discarding.wait(), 5)
    closing.cancel()
    await asyncio.gather(closing, return_exceptions=True)
    gate.set()
    await asyncio.wait_for(session.closed.wait(), 5)
    assert session.phase is Phase.CLOSED and session.id not in host.sessions


@pytest.fixture
async def slow_teardown(alice, fresh_host):
    """A detached session whose requested teardown waits in its slash worker's close until
    ``release`` is set (done at the end of the test at the latest)."""
    host = await get_host()
    ctx = await open_context(host, alice)
    session = await host.create(ctx, "t")
    await host.connection_closed(ctx)
    closing, release = asyncio.Event(), asyncio.Event()
    session.slash = SlashClient(session.id)

    async def slow_close():
        closing.set()
        await release.wait()

    session.slash.close = slow_close
    await get_channel_layer().send(
        host.channel_name,
        {"type": messages.SESSION_TEARDOWN, "session_id": session.id, "reason": "closed"},
    )
    await asyncio.wait_for(closing.wait(), 5)
    yield host, session, release
    release.set()
    await asyncio.wait_for(session.closed.wait(), 5)


async def test_host_channel_is_served_while_a_teardown_is_slow(slow_teardown):
    """Tests that a reply to a forwarded call is handled while a requested teardown is still
    waiting on its slash worker: teardowns do not block the host channel's listener."""
    host, session, _ = slow_teardown
    reply = asyncio.get_running_loop().create_future()
    host.router._pending["call-1"] = reply
    await get_channel_layer().send(
        host.channel_name, {"type": messages.HOST_REPLY, "call_id": "call-1"}
    )
    assert (await asyncio.wait_for(reply, 2))["call_id"] == "call-1"
    assert session.phase is Phase.CLOSING


async def test_reap_of_a_session_being_torn_down_is_a_no_op(slow_teardown):
    """Tests that a reap arriving while the session is being torn down does nothing: the
    session is closed once, for the reason of the teardown under way."""
    host, session, release = slow_teardown
    reply = asyncio.get_running_loop().create_future()
    host.router._pending["after-reap"] = reply
    layer = get_channel_layer()
    reap = {"type": messages.SESSION_REAP, "session_id": session.id, "epoch": session.epoch}
    await layer.send(host.channel_name, reap)
    await layer.send(host.channel_name, {"type": messages.HOST_REPLY, "call_id": "after-reap"})
    await asyncio.wait_for(reply, 2)
    release.set()
    await asyncio.wait_for(session.closed.wait(), 5)
    assert session.close_reason == "closed"
    assert (host.counters["closed"], host.counters["reaped"]) == (1, 0)
