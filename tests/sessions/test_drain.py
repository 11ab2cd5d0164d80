"""A worker's drain: running turns finish (or are interrupted at the timeout), sessions are
left detached and hosted nowhere, the host leaves the registry, and another worker revives
each session at once on its first resume."""

import asyncio

import pytest
from channels.layers import InMemoryChannelLayer

from gateway_app.agents import Agent
from gateway_app.models import CloseReason, GatewaySession, Message
from gateway_app.rpc.errors import WorkerDraining
from gateway_app.sessions import host as host_module
from gateway_app.sessions.cluster import messages
from gateway_app.sessions.cluster.messages import Operation
from gateway_app.sessions.drain import (
    RESTART_MESSAGE,
    WorkerDrain,
    connections_closed,
    drain_host,
)
from gateway_app.sessions.host import SessionHost
from tests.sessions.cluster.fakes import FakeRegistry, connect, running_hosts

pytestmark = pytest.mark.django_db(transaction=True)


class GatedAgent(Agent):
    """Streams "partial " then waits for ``gate`` before its last word."""

    name = "gated"

    def __init__(self) -> None:
        self.streamed = asyncio.Event()
        self.gate = asyncio.Event()

    async def run(self, turn) -> None:
        await turn.delta("partial ")
        self.streamed.set()
        await self.gate.wait()
        await turn.delta("done")


@pytest.fixture
def registry():
    return FakeRegistry()


@pytest.fixture
def agent(monkeypatch):
    gated = GatedAgent()
    monkeypatch.setattr(host_module, "get_agent", lambda: gated)
    return gated


@pytest.fixture
async def hosts(settings, registry):
    """Hosts A and B on one layer and one registry; beats only when a test asks."""
    settings.HERMES_GATEWAY = {
        **settings.HERMES_GATEWAY,
        "HEARTBEAT_S": 3600,
        "SETTLE_INTERVAL_S": 0,
        "DELTA_COALESCE_MS": 0,
    }
    async with running_hosts(registry) as started:
        yield started


async def running_session(host, user, agent):
    """A session on ``host`` whose turn has streamed its first word and waits."""
    ctx = await connect(host, user)
    session = await host.create(ctx, "t")
    await host.submit(ctx, session.id, "hello")
    await asyncio.wait_for(agent.streamed.wait(), 5)
    return ctx, session


async def assistant_messages(session_id):
    return [
        (m.content, m.interrupted)
        async for m in Message.objects.filter(session_id=session_id, role="assistant")
    ]


async def test_a_running_turn_finishes_before_its_session_is_drained(hosts, alice, agent):
    """Tests that a drain waits for a running turn within the timeout: the reply is stored
    whole, not interrupted."""
    a, _ = hosts
    _, session = await running_session(a, alice, agent)
    draining = asyncio.create_task(drain_host(a, turn_timeout=3600))
    await asyncio.sleep(0)
    assert not draining.done()
    agent.gate.set()
    await asyncio.wait_for(draining, 5)
    assert await assistant_messages(session.id) == [("partial done", False)]


async def test_a_turn_past_the_drain_timeout_is_interrupted_and_its_partial_text_kept(
    hosts, alice, agent
):
    """Tests that a turn still running at DRAIN_TIMEOUT_S is interrupted and its partial text
    stored, marked interrupted."""
    a, _ = hosts
    _, session = await running_session(a, alice, agent)
    await asyncio.wait_for(drain_host(a, turn_timeout=0), 5)
    assert await assistant_messages(session.id) == [("partial ", True)]


async def test_a_drained_session_is_left_detached_and_hosted_nowhere(hosts, alice, registry):
    """Tests that a drained session's row is detached (resumable, not closed), names no host,
    keeps exactly its last seq, and that the host and the session left the registry."""
    a, _ = hosts
    ctx = await connect(a, alice)
    session = await a.create(ctx, "t")
    await a.heartbeat.beat()
    await asyncio.wait_for(drain_host(a, turn_timeout=0), 5)
    row = await GatewaySession.objects.aget(pk=session.id)
    assert (row.status, row.attached, row.host_channel, row.close_reason) == ("detached", 0, "", "")
    assert row.last_seq == session.seq
    assert session.id not in a.sessions and session.id not in registry.entries
    assert not await registry.alive(a.channel_name)


async def test_another_host_revives_a_drained_session_without_forwarding(hosts, alice, agent):
    """Tests that the first resume of a drained session on another host cold-starts it there
    at once (no call forwarded to the drained host) and continues its seqs with no gap."""
    a, b = hosts
    _, session = await running_session(a, alice, agent)
    agent.gate.set()
    await asyncio.wait_for(drain_host(a, turn_timeout=3600), 5)
    on_b = await connect(b, alice)
    result = await b.router.call(on_b, Operation.RESUME, session.id, last_seq=session.seq)
    assert b.counters["cold_starts"] == 1 and b.counters["forwarded"] == 0
    assert result["gap"] is False and result["last_seq"] == session.seq
    assert [m["content"] for m in result["messages"]] == ["hello", "partial done"]


async def test_a_draining_host_refuses_new_sessions_and_turns(hosts, alice):
    """Tests that while a host drains it starts no session and no turn (the client's next
    connection lands on another worker)."""
    a, _ = hosts
    ctx = await connect(a, alice)
    session = await a.create(ctx, "t")
    a.draining = True
    with pytest.raises(WorkerDraining):
        await a.create(ctx, "another")
    with pytest.raises(WorkerDraining):
        await a.submit(ctx, session.id, "hi")


async def test_each_connection_is_told_to_restart_once_nothing_it_holds_runs(hosts, alice, agent):
    """Tests that a drain tells an idle connection to restart at once, and one attached to a
    running turn only after that turn ended."""
    a, _ = hosts
    idle = await connect(a, alice)
    busy, _ = await running_session(a, alice, agent)
    draining = asyncio.create_task(drain_host(a, turn_timeout=3600))
    message = await asyncio.wait_for(a.layer.receive(idle.channel_name), 5)
    assert message == {"type": RESTART_MESSAGE}
    agent.gate.set()
    await asyncio.wait_for(draining, 5)
    frames = []
    while (message := await asyncio.wait_for(a.layer.receive(busy.channel_name), 5))[
        "type"
    ] != RESTART_MESSAGE:
        frames.append(message["frame"])
    assert '"message.complete"' in frames[-1]


async def test_a_drain_message_on_the_host_channel_starts_the_drain(hosts):
    """Tests that a host.drain message on the host channel requests the worker's drain."""
    a, _ = hosts
    requested = asyncio.Event()
    a.host_channel.drain = requested.set
    await a.layer.send(a.channel_name, messages.drain())
    await asyncio.wait_for(requested.wait(), 5)


async def test_a_worker_drain_runs_once_and_calls_its_hooks(fresh_host):
    """Tests that a second drain request joins the first, and that the start and done hooks
    run once each (the server stops listening, then stops)."""
    drain = WorkerDrain()
    calls = []
    drain.on_start.append(lambda: calls.append("start"))
    drain.on_done.append(lambda: calls.append("done"))
    first = drain.request()
    assert drain.request() is first and drain.draining
    await asyncio.wait_for(first, 5)
    assert calls == ["start", "done"]


async def test_a_drained_worker_starts_no_new_host_for_a_late_call(fresh_host, alice):
    """Tests that after the worker's drain a call still arriving gets the drained host, which
    refuses new work, rather than a fresh host started in the stopping process."""
    host = await host_module.get_host()
    drain = WorkerDrain()
    await asyncio.wait_for(drain.request(), 5)
    assert await host_module.get_host() is host
    with pytest.raises(WorkerDraining):
        await host.create(await connect(host, alice), "late")


class SlowAckLayer(InMemoryChannelLayer):
    """Delivers a ``message.complete`` at once, then waits for an acknowledgement that never
    comes (as a Redis reply still on its way when the sending task is cancelled)."""

    def __init__(self) -> None:
        super().__init__()
        self.complete_sent = asyncio.Event()

    async def group_send(self, group, message):
        await super().group_send(group, message)
        if '"message.complete"' in message.get("frame", ""):
            self.complete_sent.set()
            await asyncio.Event().wait()


async def test_a_complete_sent_while_its_turn_is_cancelled_is_in_the_transcript(
    settings, registry, alice, agent
):
    """Tests that a message.complete already on its way to the clients when the session's
    teardown cancels its turn (the drained host stopping, a close) is in the transcript:
    what a client received is never missing from the database."""
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "HEARTBEAT_S": 3600}
    host = SessionHost(SlowAckLayer(), "A", registry)
    await host.start()
    try:
        _, session = await running_session(host, alice, agent)
        agent.gate.set()
        await asyncio.wait_for(host.layer.complete_sent.wait(), 5)
        await asyncio.wait_for(host.teardown(session, CloseReason.CLOSED), 5)
        await host.store.flush()
        assert await assistant_messages(session.id) == [("partial done", False)]
    finally:
        await host.stop()


async def test_a_cold_start_under_way_when_the_drain_begins_is_refused(
    hosts, alice, registry, monkeypatch
):
    """Tests that a resume whose cold start was reading the store when its host began to
    drain is refused (the client resumes on another worker) and leaves no live copy and no
    registry entry on the drained host: else the session would live on there, hosted by a
    host the registry no longer knows, beside the copy another worker revives."""
    a, b = hosts
    on_b = await connect(b, alice)
    session = await b.create(on_b, "t")
    await asyncio.wait_for(drain_host(b, turn_timeout=0), 5)
    reading, release = asyncio.Event(), asyncio.Event()
    load = a.store.load

    async def slow_load(*args, **kwargs):
        reading.set()
        await release.wait()
        return await load(*args, **kwargs)

    monkeypatch.setattr(a.store, "load", slow_load)
    on_a = await connect(a, alice)
    resume = asyncio.create_task(
        a.router.call(on_a, Operation.RESUME, session.id, last_seq=session.seq)
    )
    await asyncio.wait_for(reading.wait(), 5)
    draining = asyncio.create_task(drain_host(a, turn_timeout=0))
    await asyncio.sleep(0)
    release.set()
    with pytest.raises(WorkerDraining):
        await asyncio.wait_for(resume, 5)
    await asyncio.wait_for(draining, 5)
    assert session.id not in a.sessions and session.id not in registry.entries


async def test_a_drained_host_waits_for_its_restarted_connections_to_close(hosts, alice):
    """Tests that the drain waits for the connections it told to restart to close before the
    worker stops: a process exiting first drops their sockets unclosed (no 1012 reaches the
    client, which then backs off as after a failure)."""
    a, _ = hosts
    ctx = await connect(a, alice)
    await asyncio.wait_for(drain_host(a, turn_timeout=0), 5)
    closed = asyncio.create_task(connections_closed(a, within=3600))
    await asyncio.sleep(0)
    assert not closed.done()
    await a.connection_closed(ctx)
    assert await asyncio.wait_for(closed, 5) is True
