"""Orphan reaping: delayed reap through the layer, epochs, exemptions, TTL, LRU, races."""

import asyncio
import logging
import time

import pytest
from channels.layers import get_channel_layer

from gateway_app.models import GatewaySession, Message
from gateway_app.rpc.context import CallContext, Caller
from gateway_app.sessions.cluster import messages
from gateway_app.sessions.host import current_host, get_host
from gateway_app.sessions.reaper import EVICTION_WARN_INTERVAL_S, ThrottledCount
from gateway_app.sessions.state import Phase
from gateway_app.slash.client import SlashClient
from tests.support.poll import eventually
from tests.support.procs import assert_gone

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def gateway_options(settings):
    """Set gateway options for one test: ``gateway_options(REAP_GRACE_S=0.1)``."""

    def apply(**options):
        settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, **options}

    return apply


def judged_reaps(host):
    """A queue of the ``session.reap`` messages ``host`` judged, each put once judged: a
    test awaits the reap itself instead of sleeping past the moment it would land."""
    judged = asyncio.Queue()
    handle = host.reaper.handle

    async def judge(message):
        await handle(message)
        judged.put_nowait(message)

    host.reaper.handle = judge
    return judged


async def next_reap(judged):
    return await asyncio.wait_for(judged.get(), 5)


async def create_detached(connect, user, *, slash=False, prompt=None):
    """A session created on a connection that then disconnects (a browser refresh)."""
    rpc = await connect(user)
    sid = (await rpc.call("session.create"))["session_id"]
    if slash:
        await rpc.call("slash.exec", {"session_id": sid, "command": "/version"})
    if prompt:
        await rpc.call("prompt.submit", {"session_id": sid, "text": prompt})
    await rpc.connection.close()
    return sid


async def test_reap_closes_the_slash_worker(connect, alice, gateway_options):
    """Tests that a detached session is reaped after the grace and its worker pid is gone."""
    gateway_options(REAP_GRACE_S=0.2)
    sid = await create_detached(connect, alice, slash=True)
    host = current_host()
    pid = host.sessions[sid].slash.pid
    await eventually(lambda: sid not in host.sessions)
    await assert_gone([pid], within=0)
    await host.store.flush()
    row = await GatewaySession.objects.aget(pk=sid)
    assert (row.status, row.close_reason, row.slash_pid) == ("closed", "reaped", None)


async def test_reap_spares_a_reattached_session(connect, alice, gateway_options):
    """Tests that resuming within the grace cancels the reap: the timer is disarmed, a reap
    it already sent is stale when judged, and the sweep leaves the attached session be."""
    gateway_options(REAP_GRACE_S=30)
    sid = await create_detached(connect, alice)
    host = current_host()
    sent_epoch = host.sessions[sid].epoch
    rpc = await connect(alice)
    await rpc.call("session.resume", {"session_id": sid})
    session = host.sessions[sid]
    assert session.reap_timer is None
    await host.reaper.handle(
        {"type": messages.SESSION_REAP, "session_id": sid, "epoch": sent_epoch}
    )
    await host.reaper.sweep(now=time.monotonic() + 10_000)
    assert host.sessions.get(sid) is session
    assert session.phase is Phase.ACTIVE and session.attached


async def test_reap_spares_a_mid_turn_session_and_rearms_after_it(connect, alice, gateway_options):
    """Tests that a reap judged while a turn runs defers it, and the session is reaped once
    the turn ends."""
    gateway_options(REAP_GRACE_S=0.1)
    host = await get_host()
    reaps = judged_reaps(host)
    sid = await create_detached(connect, alice, prompt="!sleep 3600 slow")
    session = host.sessions[sid]
    assert (await next_reap(reaps))["epoch"] == session.epoch
    assert host.sessions.get(sid) is session and session.status == "running"
    rpc = await connect(alice)
    assert await rpc.call("session.interrupt", {"session_id": sid}) == {"interrupted": True}
    await eventually(lambda: sid not in host.sessions)
    await host.store.flush()
    row = await GatewaySession.objects.aget(pk=sid)
    assert row.close_reason == "reaped"


async def test_reap_spares_a_session_with_a_pending_approval(connect, alice, gateway_options):
    """Tests that a session waiting on an approval answer is not reaped, by its grace
    timer's reap or by a sweep long past the grace."""
    gateway_options(REAP_GRACE_S=0.1, PENDING_QUESTION_TIMEOUT_S=0)
    host = await get_host()
    reaps = judged_reaps(host)
    sid = await create_detached(connect, alice, prompt="!tool rm -rf /tmp/x")
    await pending_question(host, sid)
    session = host.sessions[sid]
    assert (await next_reap(reaps))["epoch"] == session.epoch
    await host.reaper.sweep(now=session.detached_at + 10_000)
    assert host.sessions.get(sid) is session and session.phase is Phase.ACTIVE


async def test_reap_of_a_finalized_session_is_a_no_op(connect, alice, gateway_options):
    """Tests that a reap arriving for an already closed session does nothing."""
    gateway_options(REAP_GRACE_S=30)
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    await rpc.call("session.close", {"session_id": sid})
    host = current_host()
    before = dict(host.counters)
    await host.reaper.handle({"type": messages.SESSION_REAP, "session_id": sid, "epoch": 0})
    assert dict(host.counters) == before


async def test_grace_zero_disables_reaping(connect, alice, gateway_options):
    """Tests that REAP_GRACE_S=0 never reaps a detached session."""
    gateway_options(REAP_GRACE_S=0, SESSION_TTL_S=0)
    sid = await create_detached(connect, alice)
    host = current_host()
    assert host.sessions[sid].reap_timer is None
    await host.reaper.sweep(now=time.monotonic() + 10_000)
    assert sid in host.sessions


async def test_stale_epoch_reap_is_dropped(connect, alice, gateway_options):
    """Tests that a reap carrying an old epoch, delivered through the layer, is dropped."""
    gateway_options(REAP_GRACE_S=30)
    host = await get_host()
    reaps = judged_reaps(host)
    sid = await create_detached(connect, alice)
    stale = host.sessions[sid].epoch - 1
    await get_channel_layer().send(
        host.channel_name, {"type": messages.SESSION_REAP, "session_id": sid, "epoch": stale}
    )
    assert (await next_reap(reaps))["epoch"] == stale
    assert sid in host.sessions
    current = host.sessions[sid].epoch
    await get_channel_layer().send(
        host.channel_name, {"type": messages.SESSION_REAP, "session_id": sid, "epoch": current}
    )
    assert (await next_reap(reaps))["epoch"] == current
    assert sid not in host.sessions


async def test_reap_travels_as_a_channel_layer_message(connect, alice, gateway_options):
    """Tests that the grace timer sends session.reap to the host channel, not a direct call."""
    gateway_options(REAP_GRACE_S=0.05)
    host = await get_host()
    sent = []
    original = host.layer.send

    async def spy(channel, message):
        sent.append((channel, message))
        await original(channel, message)

    host.layer.send = spy
    try:
        sid = await create_detached(connect, alice)
        await eventually(lambda: sid not in host.sessions)
    finally:
        del host.layer.send
    assert (host.channel_name, messages.SESSION_REAP, sid) in [
        (channel, message["type"], message.get("session_id")) for channel, message in sent
    ]


async def test_ttl_sweep_reaps_idle_sessions(connect, alice, gateway_options):
    """Tests that the periodic sweep reaps sessions idle longer than the TTL."""
    gateway_options(REAP_GRACE_S=0, SESSION_TTL_S=60)
    sid = await create_detached(connect, alice)
    host = current_host()
    assert (await host.reaper.sweep())["ttl"] == 0
    counts = await host.reaper.sweep(now=time.monotonic() + 61)
    assert counts["ttl"] == 1 and sid not in host.sessions
    await host.store.flush()
    assert (await GatewaySession.objects.aget(pk=sid)).close_reason == "ttl"


async def test_ttl_spares_attached_sessions(connect, alice, gateway_options):
    """Tests that the TTL sweep never reaps an attached session."""
    gateway_options(REAP_GRACE_S=0, SESSION_TTL_S=60)
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    await current_host().reaper.sweep(now=time.monotonic() + 61)
    assert sid in current_host().sessions


async def test_lru_eviction_beyond_the_live_session_cap(connect, alice, gateway_options):
    """Tests that exceeding MAX_LIVE_SESSIONS evicts the least recently used idle session."""
    gateway_options(REAP_GRACE_S=0, MAX_LIVE_SESSIONS=2)
    oldest = await create_detached(connect, alice, slash=True)
    host = current_host()
    pid = host.sessions[oldest].slash.pid
    newer = await create_detached(connect, alice)
    rpc = await connect(alice)
    newest = (await rpc.call("session.create"))["session_id"]
    assert set(host.sessions) == {newer, newest}
    await assert_gone([pid], within=0)
    await host.store.flush()
    assert (await GatewaySession.objects.aget(pk=oldest)).close_reason == "evicted"


def test_a_throttled_count_reports_the_first_event_then_once_per_interval():
    """Tests that the first events are due at once, later ones are counted until the
    interval has passed, and the next report carries their sum."""
    now = [100.0]
    count = ThrottledCount(60.0, clock=lambda: now[0])
    assert count.add(1) == 1
    assert count.add(2) is None
    now[0] += 59.9
    assert count.add(1) is None
    now[0] += 0.1
    assert count.add(1) == 4 and count.unreported == 0


async def test_evictions_are_reported_in_one_rate_limited_warning(
    connect, alice, gateway_options, caplog
):
    """Tests that the first eviction is reported at once and later ones within the interval
    are counted for the next report, not logged one warning each."""
    gateway_options(REAP_GRACE_S=0, MAX_LIVE_SESSIONS=1)
    for _ in range(3):
        await create_detached(connect, alice)
    reaper = current_host().reaper
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    evictions = [m for m in warnings if "MAX_LIVE_SESSIONS=1 reached" in m]
    assert evictions == [
        "MAX_LIVE_SESSIONS=1 reached: evicted 1 least recently used idle session(s) since the"
        " last report (1 in all); next report in 60s at the earliest"
    ]
    assert reaper.evictions.unreported == 1
    reaper.evictions.clock = lambda: time.monotonic() + EVICTION_WARN_INTERVAL_S
    await create_detached(connect, alice)
    assert "evicted 2 least recently used idle session(s) since the last report (3 in all)" in (
        caplog.text
    )


async def test_lru_eviction_spares_attached_sessions(connect, alice, gateway_options):
    """Tests that the cap never evicts an attached session (it is exceeded instead)."""
    gateway_options(REAP_GRACE_S=0, MAX_LIVE_SESSIONS=1)
    rpc = await connect(alice)
    first = (await rpc.call("session.create"))["session_id"]
    second = (await rpc.call("session.create"))["session_id"]
    assert set(current_host().sessions) == {first, second}


async def test_reaped_session_can_be_resumed_cold(connect, alice, gateway_options):
    """Tests that a reaped session resumes from its stored transcript."""
    gateway_options(REAP_GRACE_S=0.1)
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    await rpc.turn(sid, "before the reap")
    await rpc.connection.close()
    host = current_host()
    await eventually(lambda: sid not in host.sessions)
    again = await connect(alice)
    result = await again.call("session.resume", {"session_id": sid})
    assert [m["content"] for m in result["messages"]] == ["before the reap"] * 2
    assert host.sessions[sid].slash is None
    await again.call("slash.exec", {"session_id": sid, "command": "/history"})
    assert host.sessions[sid].slash.alive


async def test_resume_racing_the_reap_is_always_consistent(alice, fresh_host, gateway_options):
    """Tests that in 200 resume-vs-reap races the resume always ends attached to one live
    session."""
    gateway_options(REAP_GRACE_S=0.001)
    host = await get_host()
    layer = get_channel_layer()
    caller = Caller(alice.pk, "alice")
    outcomes = {"warm": 0, "cold": 0}
    for i in range(200):
        old = CallContext(caller, await layer.new_channel())
        session = await host.create(old, "race")
        await host.connection_closed(old)
        # Land the resume at (or around) the instant the reap is judged.
        await asyncio.sleep((i % 5) * 0.0005)
        new = CallContext(caller, await layer.new_channel())
        host.connection_opened(new)
        result = await host.resume(new, session.id, None)
        live = host.sessions[session.id]
        assert live.phase is Phase.ACTIVE
        assert new.channel_name in live.attached and result["status"] == "live"
        outcomes["warm" if live is session else "cold"] += 1
        await host.close(new, session.id)
        await host.connection_closed(new)
    # Both sides of the race really happened: warm re-attach and clean cold resume.
    assert outcomes["warm"] > 0 and outcomes["cold"] > 0
    assert sum(outcomes.values()) == 200
    assert not host.sessions


async def test_lru_eviction_counts_a_touch_while_detached_as_use(connect, alice, gateway_options):
    """Tests that a detached session used since it detached (a slash command from another
    connection, without attaching) is no longer the least recently used one."""
    gateway_options(REAP_GRACE_S=0, MAX_LIVE_SESSIONS=2)
    first = await create_detached(connect, alice)
    second = await create_detached(connect, alice)
    rpc = await connect(alice)
    await rpc.call("slash.exec", {"session_id": first, "command": "/status"})
    third = (await rpc.call("session.create"))["session_id"]
    assert set(current_host().sessions) == {first, third}
    assert second not in current_host().sessions


def held_slash_commands(monkeypatch) -> tuple[asyncio.Event, asyncio.Event]:
    """Hold every slash command at its start: (started, release)."""
    started, release = asyncio.Event(), asyncio.Event()
    execute = SlashClient.execute

    async def held(self, command, context):
        started.set()
        await release.wait()
        return await execute(self, command, context)

    monkeypatch.setattr(SlashClient, "execute", held)
    return started, release


async def test_session_cold_started_without_attach_is_reaped_after_the_grace(
    connect, alice, gateway_options, monkeypatch
):
    """Tests that a reaped session woken by a slash command from a connection that never
    attaches it is reaped again after the grace, slash worker included (no leak until TTL)."""
    gateway_options(REAP_GRACE_S=0.2)
    sid = await create_detached(connect, alice)
    host = current_host()
    await eventually(lambda: sid not in host.sessions)
    started, release = held_slash_commands(monkeypatch)
    rpc = await connect(alice)
    call = asyncio.ensure_future(rpc.call("slash.exec", {"session_id": sid, "command": "/status"}))
    await asyncio.wait_for(started.wait(), 10)
    assert not host.sessions[sid].attached
    release.set()
    await call
    pid = host.sessions[sid].slash.pid if sid in host.sessions else None
    await eventually(lambda: sid not in host.sessions)
    await assert_gone([pid] if pid else [])


async def test_a_reap_due_while_a_slash_command_runs_waits_for_it(
    connect, alice, gateway_options, monkeypatch
):
    """Tests that a detached session is not reaped under its running slash command (the
    caller would get "closed while the slash command ran"), and is reaped once it ends."""
    gateway_options(REAP_GRACE_S=0.3)
    sid = await create_detached(connect, alice)
    host = current_host()
    started, release = held_slash_commands(monkeypatch)
    rpc = await connect(alice)
    call = asyncio.ensure_future(rpc.call("slash.exec", {"session_id": sid, "command": "/status"}))
    await asyncio.wait_for(started.wait(), 10)
    session = host.sessions[sid]
    await host.reaper.handle(messages.reap(sid, session.epoch))
    assert sid in host.sessions
    release.set()
    assert "output" in await call
    await eventually(lambda: sid not in host.sessions)


async def test_cold_starts_evict_beyond_the_live_session_cap(connect, alice, gateway_options):
    """Tests that reviving stored sessions with slash.exec (a cold start that does not
    attach) keeps MAX_LIVE_SESSIONS: the least recently used idle session is evicted, with
    its slash worker, as for session.create."""
    gateway_options(REAP_GRACE_S=0, MAX_LIVE_SESSIONS=2)
    rpc = await connect(alice)
    stored = await rpc.closed_sessions(3)
    host = current_host()
    pids = []
    for sid in stored:
        await rpc.call("slash.exec", {"session_id": sid, "command": "/version"})
        pids.append(host.sessions[sid].slash.pid)
    assert set(host.sessions) == set(stored[1:])
    await assert_gone(pids[:1], within=0)


### Questions nobody is attached to answer ###


async def pending_question(host, sid):
    await eventually(lambda: sid in host.sessions and host.sessions[sid].pending)
    return next(iter(host.sessions[sid].pending.values()))


async def stored_messages(host, sid):
    await host.store.flush()
    return [
        (m.role, m.content) async for m in Message.objects.filter(session_id=sid).order_by("id")
    ]


async def test_unattended_approval_is_denied_and_the_session_then_reaped(
    connect, alice, gateway_options, caplog
):
    """Tests that an approval unanswered past the timeout while detached is denied, the turn
    finishes, and the session is reaped by the sweep after it."""
    gateway_options(REAP_GRACE_S=30, PENDING_QUESTION_TIMEOUT_S=60)
    sid = await create_detached(connect, alice, prompt="!tool rm -rf /tmp/x")
    host = current_host()
    question = await pending_question(host, sid)
    session = host.sessions[sid]
    assert (await host.reaper.sweep(now=session.detached_at + 59))["answered"] == 0
    with caplog.at_level(logging.INFO, logger="gateway_app"):
        counts = await host.reaper.sweep(now=session.detached_at + 61)
    assert counts == {"answered": 1, "reaped": 0, "ttl": 0}  # still busy: its turn goes on
    assert question.future.result() == "deny"
    assert f"approval request {question.request_id} unanswered" in caplog.text
    await asyncio.wait_for(asyncio.shield(session.turn.task), 5)
    assert ("tool", "denied: rm -rf /tmp/x") in await stored_messages(host, sid)
    assert (await host.reaper.sweep(now=session.detached_at + 61))["reaped"] == 1
    assert sid not in host.sessions
    await host.store.flush()
    assert (await GatewaySession.objects.aget(pk=sid)).close_reason == "reaped"


async def test_unattended_clarify_gets_an_empty_answer(connect, alice, gateway_options):
    """Tests that a clarify question unanswered past the timeout while detached gets ""."""
    gateway_options(REAP_GRACE_S=30, PENDING_QUESTION_TIMEOUT_S=60)
    sid = await create_detached(connect, alice, prompt="!clarify Which one?")
    host = current_host()
    question = await pending_question(host, sid)
    session = host.sessions[sid]
    await host.reaper.sweep(now=session.detached_at + 61)
    assert question.future.result() == ""
    await asyncio.wait_for(asyncio.shield(session.turn.task), 5)
    assert (await stored_messages(host, sid))[-1] == ("assistant", "")


async def test_attached_session_question_is_never_answered_for_the_user(
    connect, alice, gateway_options
):
    """Tests that a question of a session with a connection attached waits for its user."""
    gateway_options(REAP_GRACE_S=30, PENDING_QUESTION_TIMEOUT_S=60)
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    await rpc.call("prompt.submit", {"session_id": sid, "text": "!tool rm -rf /tmp/x"})
    host = current_host()
    question = await pending_question(host, sid)
    assert (await host.reaper.sweep(now=time.monotonic() + 10_000))["answered"] == 0
    assert not question.future.done()


async def test_reattaching_in_time_keeps_the_question_for_the_user(connect, alice, gateway_options):
    """Tests that resuming a detached session before the timeout keeps its question open,
    however long it then stays attached, and the user can still answer it."""
    gateway_options(REAP_GRACE_S=30, PENDING_QUESTION_TIMEOUT_S=60)
    sid = await create_detached(connect, alice, prompt="!tool rm -rf /tmp/x")
    host = current_host()
    question = await pending_question(host, sid)
    rpc = await connect(alice)
    await rpc.call("session.resume", {"session_id": sid})
    assert (await host.reaper.sweep(now=time.monotonic() + 10_000))["answered"] == 0
    assert not question.future.done()
    await rpc.call(
        "approval.respond",
        {"session_id": sid, "request_id": question.request_id, "choice": "once"},
    )
    assert question.future.result() == "once"


async def test_question_timeout_zero_never_answers(connect, alice, gateway_options):
    """Tests that PENDING_QUESTION_TIMEOUT_S=0 leaves unattended questions waiting."""
    gateway_options(REAP_GRACE_S=30, PENDING_QUESTION_TIMEOUT_S=0)
    sid = await create_detached(connect, alice, prompt="!tool rm -rf /tmp/x")
    host = current_host()
    question = await pending_question(host, sid)
    await host.reaper.sweep(now=time.monotonic() + 10_000)
    assert not question.future.done() and sid in host.sessions
