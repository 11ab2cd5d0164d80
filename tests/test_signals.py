"""The public signals of gateway_app.signals: each sent with its arguments for its lifecycle
event, from the host's background task, so receivers (async, slow or raising) change nothing."""

import asyncio
import logging
import threading
import time

import pytest

from gateway_app import signals
from gateway_app.sessions.host import SessionHost, current_host

pytestmark = pytest.mark.django_db(transaction=True)

ALL = {
    name: getattr(signals, name)
    for name in (
        "session_created",
        "session_attached",
        "session_detached",
        "session_closed",
        "turn_started",
        "turn_finished",
    )
}


@pytest.fixture
def received():
    """Every gateway signal sent during the test, as (name, arguments), in order."""
    log: list[tuple[str, dict]] = []
    receivers = {}
    for name, signal in ALL.items():

        def receiver(signal, sender, name=name, **kwargs):
            assert sender is SessionHost
            log.append((name, kwargs))

        receivers[name] = receiver
        signal.connect(receiver, weak=False)
    yield log
    for name, signal in ALL.items():
        signal.disconnect(receivers[name])


@pytest.fixture
def connected(request):
    """``connected(signal, receiver)`` connects a receiver for the test's duration."""
    pairs = []

    def connect_receiver(signal, receiver):
        signal.connect(receiver, weak=False)
        pairs.append((signal, receiver))

    yield connect_receiver
    for signal, receiver in pairs:
        signal.disconnect(receiver)


def named(log, name):
    return [kwargs for signal_name, kwargs in log if signal_name == name]


async def open_channel(connect, user):
    """A new connection and the channel-layer channel the host knows it by."""
    host = current_host()
    before = set(host.connections) if host is not None else set()
    rpc = await connect(user)
    [channel] = set(current_host().connections) - before
    return rpc, channel


async def delivered():
    """Wait until the host has sent every signal queued so far."""
    await current_host().signals.flush()


async def test_create_sends_session_created_then_attached(connect, alice, received):
    """Tests that session.create sends session_created and then session_attached for the
    creating connection's channel."""
    rpc, channel = await open_channel(connect, alice)
    sid = (await rpc.call("session.create", {"title": "notes"}))["session_id"]
    await delivered()
    assert received == [
        ("session_created", {"session_id": sid, "user_id": alice.pk, "title": "notes"}),
        ("session_attached", {"session_id": sid, "user_id": alice.pk, "channel_name": channel}),
    ]


async def test_resume_sends_session_attached_for_the_new_connection(connect, alice, received):
    """Tests that a second connection resuming a session sends session_attached with its
    own channel name."""
    first = await connect(alice)
    sid = (await first.call("session.create"))["session_id"]
    second, channel = await open_channel(connect, alice)
    await second.call("session.resume", {"session_id": sid})
    await delivered()
    assert named(received, "session_attached")[-1] == {
        "session_id": sid,
        "user_id": alice.pk,
        "channel_name": channel,
    }


async def test_disconnect_sends_session_detached(connect, alice, received):
    """Tests that a connection going away sends session_detached for its session."""
    rpc, channel = await open_channel(connect, alice)
    sid = (await rpc.call("session.create"))["session_id"]
    await rpc.connection.close()
    await delivered()
    assert named(received, "session_detached") == [
        {"session_id": sid, "user_id": alice.pk, "channel_name": channel}
    ]


async def test_session_close_sends_session_closed_with_reason_closed(connect, alice, received):
    """Tests that session.close sends session_closed with reason "closed"."""
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    await rpc.call("session.close", {"session_id": sid})
    await delivered()
    assert named(received, "session_closed") == [
        {"session_id": sid, "user_id": alice.pk, "reason": "closed"}
    ]


async def detached_session(connect, user) -> str:
    rpc = await connect(user)
    sid = (await rpc.call("session.create"))["session_id"]
    await rpc.connection.close()
    return sid


async def test_reap_sends_session_closed_with_reason_reaped(connect, alice, received, limits):
    """Tests that reaping a detached session sends session_closed with reason "reaped"."""
    limits(REAP_GRACE_S=60)
    sid = await detached_session(connect, alice)
    host = current_host()
    await host.reaper.sweep(now=time.monotonic() + 61)
    await delivered()
    assert named(received, "session_closed") == [
        {"session_id": sid, "user_id": alice.pk, "reason": "reaped"}
    ]


async def test_ttl_sends_session_closed_with_reason_ttl(connect, alice, received, limits):
    """Tests that the TTL sweep sends session_closed with reason "ttl"."""
    limits(REAP_GRACE_S=0, SESSION_TTL_S=60)
    sid = await detached_session(connect, alice)
    await current_host().reaper.sweep(now=time.monotonic() + 61)
    await delivered()
    assert named(received, "session_closed") == [
        {"session_id": sid, "user_id": alice.pk, "reason": "ttl"}
    ]


async def test_eviction_sends_session_closed_with_reason_evicted(connect, alice, received, limits):
    """Tests that evicting beyond MAX_LIVE_SESSIONS sends session_closed with reason
    "evicted" for the evicted session."""
    limits(REAP_GRACE_S=0, MAX_LIVE_SESSIONS=1)
    oldest = await detached_session(connect, alice)
    rpc = await connect(alice)
    await rpc.call("session.create")
    await delivered()
    assert named(received, "session_closed") == [
        {"session_id": oldest, "user_id": alice.pk, "reason": "evicted"}
    ]


async def test_a_turn_with_a_tool_call_sends_turn_started_and_turn_finished(
    connect, alice, received
):
    """Tests that a turn sends turn_started with its prompt, then turn_finished with the reply,
    interrupted False and the tool call's name, args and result."""
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    turn_id = (await rpc.call("prompt.submit", {"session_id": sid, "text": "!tool ls"}))["turn_id"]
    request = (await rpc.event("approval.request"))["payload"]
    await rpc.call(
        "approval.respond",
        {"session_id": sid, "request_id": request["request_id"], "choice": "once"},
    )
    complete = (await rpc.event("message.complete", turn_id=turn_id))["payload"]
    await delivered()
    ids = {"session_id": sid, "user_id": alice.pk, "turn_id": turn_id}
    assert named(received, "turn_started") == [{**ids, "text": "!tool ls"}]
    assert named(received, "turn_finished") == [
        {
            **ids,
            "text": complete["text"],
            "interrupted": False,
            "tool_calls": [{"name": "terminal", "args": {"command": "ls"}, "result": "ran: ls"}],
        }
    ]


async def test_an_interrupted_turn_finishes_interrupted(connect, alice, received):
    """Tests that turn_finished of an interrupted turn says interrupted True."""
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    turn_id = (await rpc.call("prompt.submit", {"session_id": sid, "text": "!sleep 30 zzz"}))[
        "turn_id"
    ]
    await rpc.event("message.start", turn_id=turn_id)
    await rpc.call("session.interrupt", {"session_id": sid})
    await rpc.event("message.complete", turn_id=turn_id)
    await delivered()
    [finished] = named(received, "turn_finished")
    assert finished["interrupted"] is True and finished["turn_id"] == turn_id


async def test_one_sessions_signals_arrive_in_lifecycle_order(connect, alice, received):
    """Tests that one session's signals are sent in the order of its lifecycle."""
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    await rpc.turn(sid, "hello")
    await rpc.call("session.close", {"session_id": sid})
    await delivered()
    assert [name for name, kwargs in received if kwargs["session_id"] == sid] == [
        "session_created",
        "session_attached",
        "turn_started",
        "turn_finished",
        "session_closed",
    ]


async def test_an_async_receiver_is_awaited_with_the_arguments(connect, alice, connected):
    """Tests that an async receiver runs (on the loop) with the signal's arguments."""
    got = asyncio.get_running_loop().create_future()

    async def on_created(signal, sender, **kwargs):
        await asyncio.sleep(0)
        got.set_result(kwargs)

    connected(signals.session_created, on_created)
    rpc = await connect(alice)
    sid = (await rpc.call("session.create", {"title": "a"}))["session_id"]
    assert await asyncio.wait_for(got, 5) == {"session_id": sid, "user_id": alice.pk, "title": "a"}


async def test_a_blocked_sync_receiver_does_not_delay_a_ping(connect, alice, connected):
    """Tests that while a sync receiver is blocked (in its thread, on an event the test sets
    afterwards) the connection's calls are still answered, and the receiver then finishes."""
    entered, release, finished = threading.Event(), threading.Event(), threading.Event()

    def on_created(signal, sender, **kwargs):
        entered.set()
        release.wait(10)
        finished.set()

    connected(signals.session_created, on_created)
    rpc = await connect(alice)
    try:
        await rpc.call("session.create")
        assert await asyncio.to_thread(entered.wait, 10)
        assert await rpc.call("gateway.ping") == {"pong": True}
        assert not finished.is_set()  # the ping was answered while the receiver blocked
    finally:
        release.set()
    await delivered()
    assert finished.is_set()


async def test_a_raising_receiver_is_logged_and_the_session_goes_on(
    connect, alice, connected, received, caplog
):
    """Tests that a receiver raising is logged, the call that caused the signal succeeds,
    and later signals (and turns) go on."""

    def broken(signal, sender, **kwargs):
        raise RuntimeError("receiver bug")

    connected(signals.session_created, broken)
    rpc = await connect(alice)
    with caplog.at_level(logging.ERROR, logger="django.dispatch"):
        sid = (await rpc.call("session.create"))["session_id"]
        await delivered()
    assert "receiver bug" in caplog.text
    assert (await rpc.turn(sid, "still here"))["text"] == "still here"
    await delivered()
    assert [name for name, _ in received][-2:] == ["turn_started", "turn_finished"]


async def test_a_blocked_sync_receiver_does_not_delay_database_calls(connect, alice, connected):
    """Tests that a blocked sync receiver does not hold the thread the worker's ORM calls run
    in: a resume that loads a closed session from the database is answered meanwhile."""
    rpc = await connect(alice)
    [stored] = await rpc.closed_sessions(1)
    entered, release = threading.Event(), threading.Event()

    def on_attached(signal, sender, **kwargs):
        entered.set()
        release.wait(10)

    connected(signals.session_attached, on_attached)
    try:
        other = (await rpc.call("session.create"))["session_id"]
        assert await asyncio.to_thread(entered.wait, 10)
        resumed = await rpc.call("session.resume", {"session_id": stored})
        assert resumed["session_id"] == stored and not release.is_set()
    finally:
        release.set()
    await delivered()
    assert other != stored
