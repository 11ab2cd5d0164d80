"""Calls forwarded to a session's host (``host.call``): the host authorizes each against the
session's stored owner (the live session, or its row for a cold start), whatever user the
message claims or the registry says, and a message it already served is not run again."""

import asyncio
import inspect
import uuid

import pytest
from channels.layers import get_channel_layer

from gateway_app.models import GatewaySession
from gateway_app.rpc.context import CallContext, Caller
from gateway_app.sessions.cluster import messages
from gateway_app.sessions.cluster.messages import Operation
from gateway_app.sessions.cluster.router import OPERATIONS
from gateway_app.sessions.host import SessionHost, get_host
from gateway_app.sessions.state import Phase
from tests.support.poll import eventually

pytestmark = pytest.mark.django_db(transaction=True)

NOT_FOUND = 4001
INTERNAL_ERROR = -32603
OTHER_WORKER = "specific.otherworker!host"
#: Arguments of each operation (as SessionRouter._forward sends them).
ARGS = {
    "resume": {"last_seq": None},
    "submit": {"text": "hello"},
    "slash": {"command": "/help"},
    "close": {},
    "interrupt": {},
    "respond": {"kind": "approval", "request_id": "r1", "answer": True},
    "detach_id": {},
}


@pytest.fixture
async def host(fresh_host):
    return await get_host()


async def local_connection(host, user):
    ctx = CallContext(Caller(user.pk, user.username), await host.layer.new_channel())
    host.connection_opened(ctx)
    return ctx


def call(op, session_id, user, channel, reply_to, **args):
    """A ``host.call`` as another worker's router sends it, claiming ``user``."""
    return {
        "type": messages.HOST_CALL,
        "call_id": uuid.uuid4().hex,
        "reply_to": reply_to,
        "op": op,
        "session_id": session_id,
        "args": args if args else ARGS[op],
        "conn": {
            "channel": channel,
            "user_id": user.pk,
            "username": user.username,
            "is_staff": False,
            "worker": OTHER_WORKER,
        },
    }


async def handled(host, message):
    """Run the call on the host and return its reply."""
    await host.router.handle_call(message)
    return await asyncio.wait_for(host.layer.receive(message["reply_to"]), 5)


@pytest.fixture
async def alices_session(host, alice):
    ctx = await local_connection(host, alice)
    return await host.create(ctx, "alice's")


def test_every_operation_is_covered():
    """Tests that each forwarded operation has a case below (a new one must get one)."""
    assert set(ARGS) == set(Operation)


@pytest.mark.parametrize("op", sorted(set(Operation) - {Operation.DETACH_ID}))
async def test_a_call_claiming_another_user_on_a_live_session_is_not_found(
    host, alices_session, bob, op
):
    """Tests that bob's forwarded call on alice's live session gets 4001 and changes
    nothing: the live session's owner decides."""
    reply_to = await host.layer.new_channel()
    channel = await host.layer.new_channel()
    reply = await handled(host, call(op, alices_session.id, bob, channel, reply_to))
    assert reply["error"]["code"] == NOT_FOUND
    assert alices_session.phase is Phase.ACTIVE
    assert channel not in alices_session.attached
    assert alices_session.turn is None


@pytest.mark.parametrize("op", ["resume", "submit", "slash"])
async def test_a_call_claiming_another_user_on_a_stored_session_does_not_cold_start_it(
    host, alice, bob, op
):
    """Tests that bob's forwarded call on alice's stored (not live) session gets 4001 and
    does not revive it: the row's owner decides."""
    row = await GatewaySession.objects.acreate(user=alice, status="closed", close_reason="reaped")
    reply_to, channel = await host.layer.new_channel(), await host.layer.new_channel()
    reply = await handled(host, call(op, row.pk, bob, channel, reply_to))
    assert reply["error"]["code"] == NOT_FOUND
    assert row.pk not in host.sessions


async def test_a_close_claiming_another_user_on_a_stored_session_leaves_it(host, alice, bob):
    """Tests that bob's forwarded close of alice's open stored session (its host died)
    gets 4001 and does not finalize her row."""
    row = await GatewaySession.objects.acreate(user=alice, status="detached")
    reply_to, channel = await host.layer.new_channel(), await host.layer.new_channel()
    reply = await handled(host, call("close", row.pk, bob, channel, reply_to))
    assert reply["error"]["code"] == NOT_FOUND
    await row.arefresh_from_db()
    assert row.status == "detached"


async def test_a_detach_claiming_another_user_leaves_the_owners_connection(
    host, alices_session, alice, bob
):
    """Tests that a forwarded detach_id naming alice's remote connection but claiming bob
    does not detach her."""
    reply_to, channel = await host.layer.new_channel(), await host.layer.new_channel()
    resumed = await handled(host, call("resume", alices_session.id, alice, channel, reply_to))
    assert "result" in resumed
    reply = await handled(host, call("detach_id", alices_session.id, bob, channel, reply_to))
    assert reply["error"]["code"] == NOT_FOUND
    assert channel in alices_session.attached


async def test_a_call_reusing_a_remote_connections_channel_as_another_user_is_not_found(
    host, alices_session, alice, bob
):
    """Tests that a call naming the channel of alice's remote connection while claiming bob
    does not run with her proxy (and so as her): it gets 4001, her proxy stays hers."""
    reply_to, channel = await host.layer.new_channel(), await host.layer.new_channel()
    await handled(host, call("resume", alices_session.id, alice, channel, reply_to))
    reply = await handled(host, call("interrupt", alices_session.id, bob, channel, reply_to))
    assert reply["error"]["code"] == NOT_FOUND
    assert host.connections[channel].user_id == alice.pk


async def test_a_call_naming_a_local_connections_channel_is_not_found(
    host, alices_session, alice, bob
):
    """Tests that a forwarded call naming a connection of this worker (as bob) neither runs
    nor replaces that connection's context."""
    local = next(iter(alices_session.attached))
    mine = host.connections[local]
    reply_to = await host.layer.new_channel()
    reply = await handled(host, call("resume", alices_session.id, bob, local, reply_to))
    assert reply["error"]["code"] == NOT_FOUND
    assert host.connections[local] is mine


### Replays on the host channel ###


async def test_a_call_delivered_twice_runs_once(host, alices_session, alice):
    """Tests that a host.call pushed again with the same call_id (a captured message
    replayed) is dropped: only the first gets a reply."""
    layer = get_channel_layer()
    reply_to = await layer.new_channel()
    snapshot = {"type": messages.HOST_CALL, "op": "snapshot", "reply_to": reply_to}
    await layer.send(host.channel_name, {**snapshot, "call_id": "first"})
    await layer.send(host.channel_name, {**snapshot, "call_id": "first"})
    await layer.send(host.channel_name, {**snapshot, "call_id": "second"})
    replies = [await asyncio.wait_for(layer.receive(reply_to), 5) for _ in range(2)]
    assert [r["call_id"] for r in replies] == ["first", "second"]
    assert host.counters["replays_dropped"] == 1


async def test_a_teardown_delivered_again_does_not_close_the_revived_session(
    host, alices_session, alice
):
    """Tests that a teardown replayed after the session was resumed (cold-started again
    under the same id) is dropped: the session stays live."""
    layer = get_channel_layer()
    teardown = {
        "type": messages.SESSION_TEARDOWN,
        "id": uuid.uuid4().hex,
        "session_id": alices_session.id,
        "reason": "closed",
    }
    await layer.send(host.channel_name, teardown)
    await asyncio.wait_for(alices_session.closed.wait(), 5)
    ctx = await local_connection(host, alice)
    await host.resume(ctx, alices_session.id, None)
    revived = host.sessions[alices_session.id]
    reply_to = await layer.new_channel()
    await layer.send(host.channel_name, teardown)
    await layer.send(
        host.channel_name,
        {"type": messages.HOST_CALL, "op": "snapshot", "reply_to": reply_to, "call_id": "after"},
    )
    await asyncio.wait_for(layer.receive(reply_to), 5)
    assert host.counters["replays_dropped"] == 1
    assert revived.phase is Phase.ACTIVE


async def test_the_messages_a_host_is_sent_carry_an_id(host, alices_session, monkeypatch):
    """Tests that reaps, teardowns and revocations are sent with an id (calls and replies
    have their call_id), so the host can tell a replay."""
    from asgiref.sync import sync_to_async

    from gateway_app.auth import tokens
    from gateway_app.sessions.control import request_teardown

    sent = []

    async def capture_send(channel, message):
        sent.append(message)

    async def capture_group_send(group, message):
        sent.append(message)

    monkeypatch.setattr(host.layer, "send", capture_send)
    monkeypatch.setattr(host.layer, "group_send", capture_group_send)
    host.reaper.schedule(alices_session, 0)
    await eventually(lambda: [m for m in sent if m["type"] == messages.SESSION_REAP])
    await host.store.flush()
    row = await GatewaySession.objects.aget(pk=alices_session.id)
    await sync_to_async(request_teardown)(row, "closed")
    await tokens.revoke_token(12345)
    assert len(sent) == 3
    assert all(isinstance(message.get("id"), str) and message["id"] for message in sent)
    assert len({message["id"] for message in sent}) == 3


### The operations a host runs ###


@pytest.mark.parametrize("op", list(Operation))
def test_each_operation_runs_a_host_coroutine_of_the_caller_and_the_session(op):
    """Tests that every forwardable operation names a SessionHost coroutine taking
    ``(ctx, session_id, ...)``: renaming or reshaping a host method fails here."""
    method = OPERATIONS[op](SessionHost)
    assert inspect.iscoroutinefunction(method)
    assert list(inspect.signature(method).parameters)[:3] == ["self", "ctx", "session_id"]


@pytest.mark.parametrize("op", list(Operation))
def test_the_arguments_an_operation_is_forwarded_with_fit_its_method(op):
    """Tests that the arguments a forwarded call carries bind to the host method."""
    method = OPERATIONS[op](SessionHost)
    inspect.signature(method).bind(None, None, "sid", **ARGS[op])


async def test_a_call_of_an_unknown_operation_gets_an_error_reply(host, alices_session, alice):
    """Tests that a forwarded call naming no operation of the host is answered with an
    error, and runs nothing."""
    reply_to, channel = await host.layer.new_channel(), await host.layer.new_channel()
    message = call("resume", alices_session.id, alice, channel, reply_to)
    reply = await handled(host, {**message, "op": "teardown"})
    assert reply["error"]["code"] == INTERNAL_ERROR
    assert channel not in alices_session.attached
