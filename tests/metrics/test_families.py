"""The event families (``gateway_app.metrics.families``), each read from a real scrape
before and after its event: frames, errors by code, limit hits, turn latencies, store
batches, forwarded calls and Redis errors."""

from __future__ import annotations

import pytest
from channels.layers import InMemoryChannelLayer
from redis.exceptions import RedisError

from gateway_app.rpc.context import CallContext, Caller
from gateway_app.sessions.cluster.messages import Operation
from gateway_app.sessions.cluster.registry import RedisRegistry
from gateway_app.sessions.cluster.router import RemoteError
from gateway_app.sessions.host import SessionHost, get_host
from gateway_app.sessions.store import SessionStore
from tests.sessions.cluster.fakes import FakeRegistry
from tests.support.metrics import scrape, value

pytestmark = pytest.mark.django_db(transaction=True)


class Scrapes:
    """Deltas of one worker's samples between two scrapes."""

    def __init__(self, host: SessionHost) -> None:
        self.host = host
        self.before = scrape(host)

    def delta(self, name: str, **labels: str) -> float:
        after = value(scrape(self.host), name, worker=self.host.worker_name, **labels) or 0.0
        return after - (value(self.before, name, worker=self.host.worker_name, **labels) or 0.0)


async def test_frames_in_and_out_are_counted(connect, alice):
    """Tests that each WebSocket frame received and each one written is counted."""
    rpc = await connect(alice)
    scrapes = Scrapes(await get_host())
    await rpc.call("session.list")
    await rpc.call("session.list")
    assert scrapes.delta("hermes_frames_received_total") == 2
    assert scrapes.delta("hermes_frames_sent_total") == 2


async def test_error_responses_are_counted_by_code(connect, alice):
    """Tests that every JSON-RPC error answered is counted under its code."""
    rpc = await connect(alice)
    scrapes = Scrapes(await get_host())
    await rpc.error("no.such.method")
    await rpc.error("session.resume", {"session_id": "nope"})
    assert scrapes.delta("hermes_rpc_errors_total", code="-32601") == 1
    assert scrapes.delta("hermes_rpc_errors_total", code="4001") == 1


async def test_limit_hits_are_counted_by_kind(connect, alice, limits):
    """Tests that a request over the connection's rate limit counts a limit hit of its kind."""
    limits(RATE_LIMIT_PER_S=0.001, RATE_LIMIT_BURST=1)
    rpc = await connect(alice)
    scrapes = Scrapes(await get_host())
    await rpc.call("session.list")
    await rpc.error("session.list")
    assert scrapes.delta("hermes_limit_hits_total", kind="rate") == 1


async def test_a_turn_records_its_first_delta_and_its_duration(connect, alice):
    """Tests that a completed turn adds one time-to-first-delta and one duration sample."""
    rpc = await connect(alice)
    scrapes = Scrapes(await get_host())
    session_id = (await rpc.call("session.create"))["session_id"]
    await rpc.turn(session_id, "hello there")
    assert scrapes.delta("hermes_turn_first_delta_seconds_count") == 1
    assert scrapes.delta("hermes_turn_seconds_count", outcome="completed") == 1
    assert scrapes.delta("hermes_turn_seconds_count", outcome="interrupted") == 0


async def test_an_interrupted_turn_is_recorded_as_interrupted(connect, alice):
    """Tests that a turn stopped by session.interrupt counts under outcome=interrupted."""
    rpc = await connect(alice)
    scrapes = Scrapes(await get_host())
    session_id = (await rpc.call("session.create"))["session_id"]
    turn_id = (
        await rpc.call("prompt.submit", {"session_id": session_id, "text": "!sleep 30 a b c"})
    )["turn_id"]
    await rpc.event("message.start", turn_id=turn_id)
    await rpc.call("session.interrupt", {"session_id": session_id})
    await rpc.event("message.complete", turn_id=turn_id)
    assert scrapes.delta("hermes_turn_seconds_count", outcome="interrupted") == 1


async def test_a_store_batch_records_its_latency(fresh_host, alice):
    """Tests that each write-behind batch applied adds a store-latency sample."""
    host = await get_host()
    scrapes = Scrapes(host)
    ctx = CallContext(Caller(alice.pk, alice.username), await host.layer.new_channel())
    host.connection_opened(ctx)
    await host.create(ctx, "t")
    await host.store.flush()
    assert scrapes.delta("hermes_store_batch_seconds_count") >= 1


async def test_a_batch_that_cannot_reach_the_database_counts_a_retry(
    fresh_host, alice, monkeypatch
):
    """Tests that a batch whose database hop fails (and is queued again) is counted."""
    host = await get_host()
    scrapes = Scrapes(host)
    apply = SessionStore._apply
    failures = iter([True])

    async def flaky(batch):
        if next(failures, False):
            raise OSError("database unreachable")
        await apply(batch)

    monkeypatch.setattr(SessionStore, "_apply", staticmethod(flaky))
    ctx = CallContext(Caller(alice.pk, alice.username), await host.layer.new_channel())
    host.connection_opened(ctx)
    await host.create(ctx, "t")
    await host.store.flush()
    assert scrapes.delta("hermes_store_retries_total") == 1


@pytest.fixture
async def two_hosts(settings):
    """Hosts A and B on one in-memory layer with a shared fake registry."""
    settings.HERMES_GATEWAY = {
        **settings.HERMES_GATEWAY,
        "HEARTBEAT_S": 3600,
        "SETTLE_INTERVAL_S": 0,
        "FORWARD_TIMEOUT_S": 10,
    }
    layer, registry = InMemoryChannelLayer(), FakeRegistry()
    hosts = [SessionHost(layer, name, registry) for name in ("A", "B")]
    for host in hosts:
        await host.start()
    yield hosts
    for host in hosts:
        await host.stop()


async def test_forwarded_calls_are_counted_by_operation_and_outcome_and_timed(two_hosts, alice):
    """Tests that B's calls for a session on A count under B by outcome (ok, error), each
    with a latency sample."""
    a, b = two_hosts
    on_a = CallContext(Caller(alice.pk, alice.username), await a.layer.new_channel())
    a.connection_opened(on_a)
    session = await a.create(on_a, "t")
    await a.store.flush()
    on_b = CallContext(Caller(alice.pk, alice.username), await b.layer.new_channel())
    b.connection_opened(on_b)
    scrapes = Scrapes(b)
    await b.router.call(on_b, Operation.RESUME, session.id, last_seq=None)
    with pytest.raises(RemoteError):
        await b.router.call(
            on_b, Operation.RESPOND, session.id, kind="approval", request_id="x", answer=True
        )
    assert scrapes.delta("hermes_forwarded_calls_total", operation="resume", outcome="ok") == 1
    assert scrapes.delta("hermes_forwarded_calls_total", operation="respond", outcome="error") == 1
    assert scrapes.delta("hermes_forward_seconds_count", operation="resume") == 1
    assert scrapes.delta("hermes_forward_seconds_count", operation="respond") == 1


async def test_a_failed_redis_call_is_counted_by_operation(fresh_host):
    """Tests that a registry call whose Redis is unreachable counts a Redis error."""
    host = await get_host()
    scrapes = Scrapes(host)
    registry = RedisRegistry("redis://127.0.0.1:1/0")
    try:
        with pytest.raises(RedisError):
            await registry.register("s" * 32, 1, "channel")
        with pytest.raises(RedisError):
            await registry.alive("channel")
    finally:
        await registry.close()
    assert scrapes.delta("hermes_redis_errors_total", operation="register") == 1
    assert scrapes.delta("hermes_redis_errors_total", operation="alive") == 1
