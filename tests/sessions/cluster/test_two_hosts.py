"""Session hosts on one in-memory channel layer with a shared fake registry: two workers
in one process. Forwarding, moved sessions, takeover after a host died, and what each
heartbeat does about sessions whose registry entries changed."""

import asyncio

import pytest

from gateway_app.models import GatewaySession
from gateway_app.sessions.cluster.messages import Operation
from gateway_app.sessions.cluster.registry import HostEntry
from gateway_app.sessions.cluster.router import RemoteError
from gateway_app.sessions.host import SessionHost
from tests.sessions.cluster.fakes import FakeRegistry, connect, running_hosts
from tests.support.poll import eventually

pytestmark = pytest.mark.django_db(transaction=True)

INVALID_PARAMS = -32602


@pytest.fixture
def registry():
    return FakeRegistry()


@pytest.fixture
async def hosts(settings, registry):
    """Hosts A and B; beats only when a test calls ``heartbeat.beat()``."""
    settings.HERMES_GATEWAY = {
        **settings.HERMES_GATEWAY,
        "REAP_GRACE_S": 0,
        "HEARTBEAT_S": 3600,
        "SETTLE_INTERVAL_S": 0,
        "FORWARD_TIMEOUT_S": 10,
        "LIVE_SAMPLE_INTERVAL_S": 3600,
    }
    async with running_hosts(registry) as started:
        yield started


async def session_on(host, user, title="t"):
    """A session created on ``host`` whose row is written (other hosts read it)."""
    session = await host.create(await connect(host, user), title)
    await host.store.flush()
    return session


async def row(session_id):
    return await GatewaySession.objects.aget(pk=session_id)


### The live page ###


async def test_a_host_gets_the_sample_rings_of_the_others(hosts, alice):
    """Tests that the live page's charts on A get B's ring over the channel layer, as B
    holds it (the page shows every worker side by side)."""
    a, b = hosts
    await session_on(b, alice)
    b.samples.sample(wall=5.0, now=0.0)
    (other,) = await a.router.samples()
    assert other["worker"] == "B"
    assert [(s["t"], s["live"], s["connections"]) for s in other["samples"]] == [(5.0, 1, 1)]


### Forwarding ###


async def test_a_call_for_a_session_on_another_host_is_forwarded_and_its_reply_relayed(
    hosts, alice
):
    """Tests that B's resume of a session live on A runs on A (which attaches B's connection)
    and B's caller gets A's answer."""
    a, b = hosts
    session = await session_on(a, alice)
    on_b = await connect(b, alice)
    result = await b.router.call(on_b, Operation.RESUME, session.id, last_seq=None)
    assert result["session_id"] == session.id
    assert on_b.channel_name in session.attached
    assert session.id not in b.sessions
    assert b.counters["forwarded"] == 1


async def test_an_error_on_the_host_is_relayed_to_the_caller(hosts, alice):
    """Tests that an RpcError raised on the host reaches the forwarding worker's caller with
    its code."""
    a, b = hosts
    session = await session_on(a, alice)
    on_b = await connect(b, alice)
    with pytest.raises(RemoteError) as raised:
        await b.router.call(
            on_b, Operation.RESPOND, session.id, kind="approval", request_id="r", answer="once"
        )
    assert raised.value.code == INVALID_PARAMS


async def test_a_call_that_finds_its_session_claimed_meanwhile_follows_it(hosts, alice, registry):
    """Tests that a call whose lookup missed the session's host (A claimed it between the
    lookup and B's own claim) is not started on B but sent on to A."""
    a, b = hosts
    session = await session_on(a, alice)
    registry.answer_once(session.id, None)
    on_b = await connect(b, alice)
    await b.router.call(on_b, Operation.RESUME, session.id, last_seq=None)
    assert session.id not in b.sessions
    assert on_b.channel_name in session.attached


async def test_a_host_asked_for_a_session_another_holds_sends_the_caller_there(
    hosts, alice, registry
):
    """Tests that a call forwarded to B on a stale entry (the session is live on a third
    host C) gets "moved" from B, and the caller's worker then forwards it to C."""
    a, b = hosts
    c = SessionHost(a.layer, "C", registry)
    await c.start()
    try:
        session = await session_on(c, alice)
        registry.answer_once(session.id, HostEntry(b.channel_name, alice.pk))
        on_a = await connect(a, alice)
        await a.router.call(on_a, Operation.RESUME, session.id, last_seq=None)
        assert session.id not in a.sessions and session.id not in b.sessions
        assert on_a.channel_name in session.attached
        assert a.counters["forwarded"] == 2
    finally:
        await c.stop()


### A host that died ###


async def test_a_session_whose_host_died_is_cold_started_here(hosts, alice, registry):
    """Tests that B's resume of a session whose host A stopped beating takes it over: B
    hosts it, its row and the registry name B."""
    a, b = hosts
    session = await session_on(a, alice)
    registry.stall(a.channel_name)
    on_b = await connect(b, alice)
    await b.router.call(on_b, Operation.RESUME, session.id, last_seq=None)
    assert b.sessions[session.id].attached == {on_b.channel_name}
    assert b.counters["takeovers"] == 1
    assert registry.entries[session.id].host == b.channel_name
    await b.store.flush()
    assert (await row(session.id)).host_channel == b.channel_name


async def test_a_call_forwarded_to_a_host_that_died_is_served_here_once_it_counts_dead(
    hosts, alice, registry, settings
):
    """Tests that a resume forwarded to a host killed before it answered stops waiting as
    soon as that host counts as dead (HOST_DEAD_AFTER_S after its last beat), not after
    FORWARD_TIMEOUT_S, and cold-starts the session here."""
    a, b = hosts
    session = await session_on(a, alice)
    # Killed: nothing answers on its channel any more, nothing beats.
    await a.host_channel.stop()
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "HEARTBEAT_S": 0.01}
    resume = asyncio.create_task(
        b.router.call(await connect(b, alice), Operation.RESUME, session.id, last_seq=None)
    )
    await eventually(lambda: bool(b.router._pending), within=5)
    registry.stall(a.channel_name)
    # Well within FORWARD_TIMEOUT_S (10 s here): a guard against a hang, not a bound.
    await asyncio.wait_for(resume, 5)
    assert b.counters["takeovers"] == 1 and session.id in b.sessions


async def test_the_heartbeat_gives_up_a_session_another_host_took(hosts, alice, registry):
    """Tests that A's next beat after B took its session over drops A's copy, flagged given
    up, and leaves the row and the registry entry to B."""
    a, b = hosts
    session = await session_on(a, alice)
    registry.stall(a.channel_name)
    await b.router.call(await connect(b, alice), Operation.RESUME, session.id, last_seq=None)
    await a.heartbeat.beat()
    assert session.id not in a.sessions
    assert session.given_up and a.counters["given_up"] == 1
    await session.closed.wait()
    await b.store.flush()
    assert ((await row(session.id)).status, registry.entries[session.id].host) == (
        "live",
        b.channel_name,
    )


### Entries that lapsed while the host counted as dead ###


async def test_a_lapsed_session_nobody_took_over_is_taken_back(hosts, alice, registry):
    """Tests that A, back from a stall nobody used, re-checks its sessions against their rows
    and registers them again."""
    a, _ = hosts
    session = await session_on(a, alice)
    registry.stall(a.channel_name)
    await a.heartbeat.beat()
    await a.tasks.join()
    assert a.sessions.get(session.id) is session
    assert registry.entries[session.id].host == a.channel_name
    assert not a.heartbeat.rechecking


async def test_a_lapsed_session_taken_over_and_closed_meanwhile_is_given_up(hosts, alice, registry):
    """Tests that A gives its copy up when, during its stall, B took the session over and
    closed it (which left no entry naming B): the re-check reads the closed row."""
    a, b = hosts
    session = await session_on(a, alice)
    registry.stall(a.channel_name)
    on_b = await connect(b, alice)
    await b.router.call(on_b, Operation.RESUME, session.id, last_seq=None)
    await b.router.call(on_b, Operation.CLOSE, session.id)
    await a.heartbeat.beat()
    await a.tasks.join()
    assert session.id not in a.sessions
    assert session.given_up
    assert session.id not in registry.entries


async def test_a_registry_that_lost_its_data_makes_the_host_join_its_groups_again(
    hosts, registry, monkeypatch
):
    """Tests that a beat finding a new registry data set (Redis restarted) renews the host's
    group memberships."""
    a, _ = hosts
    renewed = []

    async def refresh():
        renewed.append(True)
        return 1

    monkeypatch.setattr(a.groups, "refresh", refresh)
    await a.heartbeat.beat()
    assert not renewed
    registry.data_id = "fake-2"
    await a.heartbeat.beat()
    assert renewed == [True]
