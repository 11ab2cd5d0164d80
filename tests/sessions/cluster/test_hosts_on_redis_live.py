"""Two session hosts in one process sharing a real redis-server (channels-redis layer and
registry): claims, takeover, forwarding and registry expiry without the cost of daphne."""

import asyncio
import time

import pytest
import redis.asyncio as redis

from gateway_app.models import GatewaySession, Message
from gateway_app.sessions.cluster.layers import ResilientRedisChannelLayer
from gateway_app.sessions.cluster.registry import SESSION_KEY, RedisRegistry
from gateway_app.sessions.cluster.router import HostUnavailable
from gateway_app.sessions.host import SessionHost
from gateway_app.slash import client as slash_client
from tests.sessions.cluster.fakes import connect
from tests.support.poll import eventually
from tests.support.procs import assert_gone, running
from tests.support.servers import RedisServer

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

HOST_DEAD_AFTER_S = 0.5


@pytest.fixture(scope="module")
def redis_server():
    with RedisServer() as server:
        yield server


@pytest.fixture
async def hosts(redis_server, settings):
    """Hosts A and B, each with its own channel layer and registry client on one Redis."""
    settings.HERMES_GATEWAY = {
        **settings.HERMES_GATEWAY,
        "REAP_GRACE_S": 0,
        "HEARTBEAT_S": 0.1,
        "HOST_DEAD_AFTER_S": HOST_DEAD_AFTER_S,
        "FORWARD_TIMEOUT_S": 2.0,
    }
    redis_url = redis_server.url
    client = redis.from_url(redis_url)
    await client.flushall()
    await client.aclose()
    started = []
    for name in ("A", "B"):
        # As hermes_site.settings configures it with REDIS_URL.
        address = {"address": redis_url, "socket_timeout": 15, "socket_connect_timeout": 2}
        layer = ResilientRedisChannelLayer(hosts=[address], capacity=5000, expiry=60)
        host = SessionHost(layer, name, RedisRegistry(redis_url))
        await host.start()
        started.append(host)
    yield started
    for host in started:
        await host.stop()
        await host.layer.close_pools()
    leftover = running(slash_client.live_worker_pids(), reaped=True)
    assert not leftover, f"slash workers left running: {leftover}"


async def stored_session(user):
    """A reaped session: only its row and transcript are left."""
    row = await GatewaySession.objects.acreate(
        user=user, status="closed", close_reason="reaped", last_seq=3
    )
    await Message.objects.acreate(session=row, role="user", content="from before")
    return row.pk


async def stall(host):
    """The host's event loop stops beating (a stall, or kill -9): wait until it counts as dead."""
    await host.heartbeat.stop()

    async def dead():
        return not await host.registry.alive(host.channel_name)

    await eventually(dead, interval=0.05)


async def test_concurrent_resumes_of_a_stored_session_on_two_hosts_start_it_once(hosts, alice):
    """Tests that a reaped session resumed at the same instant on A and B is cold-started by
    one host only (an atomic claim), and the other host forwards its caller there."""
    a, b = hosts
    for _ in range(5):
        sid = await stored_session(alice)
        on_a, on_b = await connect(a, alice), await connect(b, alice)
        await asyncio.gather(
            a.router.call(on_a, "resume", sid, last_seq=None),
            b.router.call(on_b, "resume", sid, last_seq=None),
        )
        holders = [host for host in (a, b) if sid in host.sessions]
        assert len(holders) == 1
        (holder,) = holders
        assert holder.sessions[sid].attached == {on_a.channel_name, on_b.channel_name}
        assert (await a.registry.lookup(sid)).host == holder.channel_name


async def test_a_host_whose_heartbeat_lapsed_gives_up_a_session_taken_over(hosts, alice):
    """Tests that a host that stalled past HOST_DEAD_AFTER_S, while another host took its
    session over, gives its copy up on its next beat: slash worker ended, the row and the
    registry entry left to the new host."""
    a, b = hosts
    on_a = await connect(a, alice)
    session = await a.create(on_a, "stalled")
    await a.slash(on_a, session.id, "/version")
    pid = session.slash.pid
    await stall(a)
    on_b = await connect(b, alice)
    await b.router.call(on_b, "resume", session.id, last_seq=None)
    assert session.id in b.sessions
    await a.heartbeat.beat()
    assert session.id not in a.sessions
    await asyncio.wait_for(session.closed.wait(), 10)
    await assert_gone([pid], within=0)
    await b.store.flush()
    row = await GatewaySession.objects.aget(pk=session.id)
    assert (row.status, row.host_channel) == ("live", b.channel_name)
    assert (await b.registry.lookup(session.id)).host == b.channel_name


async def test_a_host_whose_heartbeat_lapsed_gives_up_a_session_taken_over_and_closed(hosts, alice):
    """Tests that a host back from a stall gives its copy up also when the session was taken
    over and closed meanwhile (which left no registry entry naming the other host)."""
    a, b = hosts
    on_a = await connect(a, alice)
    session = await a.create(on_a, "stalled")
    await stall(a)
    on_b = await connect(b, alice)
    await b.router.call(on_b, "resume", session.id, last_seq=None)
    await b.router.call(on_b, "close", session.id)
    await a.heartbeat.beat()
    await asyncio.wait_for(session.closed.wait(), 10)
    assert session.id not in a.sessions
    assert await a.registry.lookup(session.id) is None


async def test_a_host_whose_heartbeat_lapsed_keeps_sessions_nobody_took_over(hosts, alice):
    """Tests that a host back from a stall keeps (and registers again) the sessions no other
    host took over meanwhile."""
    a, _ = hosts
    session = await a.create(await connect(a, alice), "stalled")
    await stall(a)
    await a.heartbeat.beat()
    await asyncio.wait_for(a.tasks.join(), 5)
    assert (await a.registry.lookup(session.id)).host == a.channel_name
    assert a.sessions.get(session.id) is session


async def test_a_host_registers_its_sessions_again_after_a_redis_restart(
    hosts, alice, redis_server
):
    """Tests that after Redis lost its data (a restart without persistence: keys and scripts
    gone) the host's next beats register its sessions again, and it keeps them."""
    a, _ = hosts
    session = await a.create(await connect(a, alice), "survivor")
    key = SESSION_KEY.format(session.id)
    redis_server.restart()

    async def registered_again():
        return await a.registry.redis.hget(key, "host") == a.channel_name.encode()

    await eventually(registered_again, within=10, interval=0.05, retry_on=(redis.ConnectionError,))
    assert a.sessions.get(session.id) is session


async def test_registry_entries_expire_with_their_hosts_heartbeat(hosts, alice):
    """Tests that a session's registry key carries a TTL the heartbeat renews, so the keys
    of a host that died (and whose sessions nobody resumes) do not stay in Redis forever."""
    a, _ = hosts
    session = await a.create(await connect(a, alice), "short-lived")
    key = SESSION_KEY.format(session.id)
    assert 0 < await a.registry.redis.pttl(key) <= HOST_DEAD_AFTER_S * 1000
    first_ttl_ends = time.monotonic() + HOST_DEAD_AFTER_S

    async def outlived_its_first_ttl():
        assert await a.registry.redis.exists(key), "the key expired while its host beats"
        return time.monotonic() > first_ttl_ends + HOST_DEAD_AFTER_S

    await eventually(outlived_its_first_ttl, interval=0.02)
    await stall(a)

    async def expired():
        return not await a.registry.redis.exists(key)

    await eventually(expired, interval=0.05, message="the key outlived its host")


async def test_closing_a_session_whose_host_died_finalizes_it(hosts, alice):
    """Tests that session.close from B of a session whose host A died marks the row closed
    (reason closed), as closing a live session does, and leaves no registry entry."""
    a, b = hosts
    session = await a.create(await connect(a, alice), "orphaned")
    await a.store.flush()
    await stall(a)
    on_b = await connect(b, alice)
    assert await b.router.call(on_b, "close", session.id) is None
    await b.store.flush()
    row = await GatewaySession.objects.aget(pk=session.id)
    assert (row.status, row.close_reason) == ("closed", "closed")
    assert row.closed_at is not None
    assert await b.registry.lookup(session.id) is None


async def test_forwarded_calls_that_do_not_attach_leave_no_proxy_on_the_host(hosts, alice):
    """Tests that the host forgets the proxy of a remote connection after a call that did not
    attach it (interrupts from 20 connections that then closed leave nothing behind)."""
    a, b = hosts
    on_a = await connect(a, alice)
    session = await a.create(on_a, "interrupted often")
    for _ in range(20):
        on_b = await connect(b, alice)
        assert await b.router.call(on_b, "interrupt", session.id) is False
        await b.connection_closed(on_b)
    assert not a.router.remote_connections
    assert set(a.connections) == {on_a.channel_name}


async def test_a_forwarded_slash_command_does_not_attach_the_caller(hosts, alice):
    """Tests that slash.exec forwarded to the host attaches the calling connection on neither
    side (as on the host itself), and leaves no proxy on the host."""
    a, b = hosts
    session = await a.create(await connect(a, alice), "slashed")
    on_b = await connect(b, alice)
    output = await b.router.call(on_b, "slash", session.id, command="/status")
    assert session.id in output
    assert not on_b.attached and on_b.channel_name not in session.attached
    assert on_b.channel_name not in a.router.remote_connections


@pytest.fixture
def slow_resume(hosts, monkeypatch):
    """Host A answers resumes 0.4 s late; ``slow_resume.done`` is set once one attached."""
    a = hosts[0]
    resume = a.resume
    done = asyncio.Event()

    async def late(ctx, session_id, last_seq):
        await asyncio.sleep(0.4)  # the host is busy past the caller's timeout
        try:
            return await resume(ctx, session_id, last_seq)
        finally:
            done.set()

    monkeypatch.setattr(a, "resume", late)
    late.done = done
    return late


async def resume_from_b_timing_out(a, b, user, settings):
    """A session created on A, resumed from a connection on B whose forwarded call times out
    (0.2 s) while A's slow resume still runs; returns the session and B's connection."""
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "FORWARD_TIMEOUT_S": 0.2}
    session = await a.create(await connect(a, user), "slow host")
    await a.connection_closed(next(iter(a.connections.values())))
    on_b = await connect(b, user)
    with pytest.raises(HostUnavailable):
        await b.router.call(on_b, "resume", session.id, last_seq=None)
    return session, on_b


async def test_a_forwarded_resume_answered_after_the_timeout_is_detached_on_close(
    hosts, alice, settings, slow_resume
):
    """Tests that a forwarded resume which timed out but then attached on the host is detached
    when the calling connection closes (the caller counted it as attached before forwarding)."""
    a, b = hosts
    session, on_b = await resume_from_b_timing_out(a, b, alice, settings)
    await asyncio.wait_for(slow_resume.done.wait(), 5)
    assert session.attached == {on_b.channel_name}
    await b.connection_closed(on_b)
    assert not session.attached
    assert not a.router.remote_connections


async def test_a_connection_gone_before_its_forwarded_resume_ran_is_detached_after_it(
    hosts, alice, settings, slow_resume
):
    """Tests that when a connection closes while its forwarded resume still runs on the host,
    the detach (which arrives first) is applied again once the resume has attached it."""
    a, b = hosts
    session, on_b = await resume_from_b_timing_out(a, b, alice, settings)
    await b.connection_closed(on_b)
    await asyncio.wait_for(slow_resume.done.wait(), 5)
    await eventually(lambda: not session.attached and not a.router.remote_connections)


async def test_rows_of_a_host_that_died_are_marked_detached_by_a_running_worker(
    hosts, alice, settings
):
    """Tests that the rows of a host that died while the other workers keep running (no
    worker starts afterwards) are marked detached by those workers' periodic check."""
    a, b = hosts
    on_a = await connect(a, alice)
    session = await a.create(on_a, "on a host that dies")
    await a.store.flush()
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "SETTLE_INTERVAL_S": 0.1}
    passes = asyncio.Event()
    settle_once = b.settler.settle

    async def counted_settle():
        await settle_once()
        passes.set()

    await b.settler.stop()
    b.settler.settle = counted_settle
    b.settler.start()
    await asyncio.wait_for(passes.wait(), 5)  # the pass at start: A was alive
    await stall(a)

    async def detached_row():
        await b.store.flush()
        row = await GatewaySession.objects.aget(pk=session.id)
        return row if row.status == "detached" else None

    row = await eventually(detached_row, interval=0.05)
    assert row.attached == 0
