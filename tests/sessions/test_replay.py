"""Turns that survive reconnects: replay by seq, questions across connections, interrupts."""

import asyncio

import pytest

from gateway_app.sessions import host as host_module
from gateway_app.sessions.host import current_host

pytestmark = pytest.mark.django_db(transaction=True)

WORDS = " ".join(f"w{i}" for i in range(20))


def without_id(message):
    """A transcript entry without its stored id (the row's, not part of what is compared)."""
    return {key: value for key, value in message.items() if key != "id"}


def turn_deltas(events, turn_id):
    return [
        e for e in events if e["type"] == "message.delta" and e["payload"]["turn_id"] == turn_id
    ]


async def test_replay_after_mid_stream_disconnect_yields_the_full_text_once(connect, alice):
    """Tests that resume with last_seq replays exactly the missed events, then live ones."""
    first = await connect(alice)
    sid = (await first.call("session.create"))["session_id"]
    turn_id = (
        await first.call("prompt.submit", {"session_id": sid, "text": f"!sleep 0.6 {WORDS}"})
    )["turn_id"]
    for _ in range(3):
        seen = (await first.event("message.delta", turn_id=turn_id))["seq"]
    # The client saw the turn's start and three deltas: w0 w1 w2.
    await first.connection.close()
    second = await connect(alice)
    resumed = await second.call("session.resume", {"session_id": sid, "last_seq": seen})
    assert resumed["gap"] is False
    complete = (await second.event("message.complete", turn_id=turn_id))["payload"]
    later = turn_deltas(second.events, turn_id)
    seqs = [e["seq"] for e in later]
    assert seqs == sorted(set(seqs)) and seqs[0] == seen + 1
    first_three = "".join(f"w{i} " for i in range(3))
    assert first_three + "".join(e["payload"]["text"] for e in later) == complete["text"] == WORDS


async def test_resume_without_last_seq_replays_the_running_turn(connect, alice):
    """Tests that a fresh client (no last_seq) gets the running turn's events from its start."""
    first = await connect(alice)
    sid = (await first.call("session.create"))["session_id"]
    turn_id = (
        await first.call("prompt.submit", {"session_id": sid, "text": f"!sleep 0.4 {WORDS}"})
    )["turn_id"]
    await first.event("message.delta", turn_id=turn_id)
    await first.connection.close()
    second = await connect(alice)
    resumed = await second.call("session.resume", {"session_id": sid})
    assert resumed["replayed"] >= 2
    complete = (await second.event("message.complete", turn_id=turn_id))["payload"]
    assert (
        "".join(e["payload"]["text"] for e in turn_deltas(second.events, turn_id))
        == complete["text"]
    )
    assert [e for e in second.events if e["type"] == "message.start"]


async def test_resume_reports_a_gap_when_the_buffer_no_longer_reaches_back(
    connect, alice, settings
):
    """Tests that a last_seq older than the replay buffer gives gap true and the transcript."""
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "REPLAY_BUFFER_EVENTS": 5}
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    await rpc.turn(sid, WORDS)
    again = await connect(alice)
    resumed = await again.call("session.resume", {"session_id": sid, "last_seq": 1})
    assert resumed["gap"] is True and resumed["replayed"] == 5
    assert without_id(resumed["messages"][-1]) == {"role": "assistant", "content": WORDS}


async def test_resume_with_current_seq_replays_nothing(connect, alice):
    """Tests that a client that saw everything gets no replayed events."""
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    await rpc.turn(sid, "a b")
    last = current_host().sessions[sid].seq  # message.complete included
    resumed = await rpc.call("session.resume", {"session_id": sid, "last_seq": last})
    assert resumed["replayed"] == 0 and resumed["last_seq"] == last


async def test_approval_asked_on_one_connection_is_answered_on_another(connect, alice):
    """Tests that an unanswered approval is re-sent on resume and the new answer unblocks it."""
    first = await connect(alice)
    sid = (await first.call("session.create"))["session_id"]
    turn_id = (await first.call("prompt.submit", {"session_id": sid, "text": "!tool make"}))[
        "turn_id"
    ]
    asked = await first.event("approval.request")
    await first.connection.close()
    second = await connect(alice)
    await second.call("session.resume", {"session_id": sid, "last_seq": asked["seq"]})
    resent = await second.event("approval.request")
    assert resent["payload"]["request_id"] == asked["payload"]["request_id"]
    await second.call(
        "approval.respond",
        {"session_id": sid, "request_id": resent["payload"]["request_id"], "choice": "once"},
    )
    complete = (await second.event("message.complete", turn_id=turn_id))["payload"]
    assert complete["text"] == "ran: make"


async def test_clarify_question_survives_a_reconnect(connect, alice):
    """Tests that an unanswered clarify question is re-sent to a resuming connection."""
    first = await connect(alice)
    sid = (await first.call("session.create"))["session_id"]
    await first.call("prompt.submit", {"session_id": sid, "text": "!clarify Color?"})
    await first.event("clarify.request")
    await first.connection.close()
    second = await connect(alice)
    await second.call("session.resume", {"session_id": sid})
    request = (await second.event("clarify.request"))["payload"]
    await second.call(
        "clarify.respond",
        {"session_id": sid, "request_id": request["request_id"], "answer": "green"},
    )
    assert (await second.event("message.complete"))["payload"]["text"] == "green"


async def test_answering_for_another_users_session_is_4001(connect, alice, bob):
    """Tests that bob cannot answer alice's pending approval."""
    a, b = await connect(alice), await connect(bob)
    sid = (await a.call("session.create"))["session_id"]
    await a.call("prompt.submit", {"session_id": sid, "text": "!tool x"})
    request = (await a.event("approval.request"))["payload"]
    error = await b.error(
        "approval.respond",
        {"session_id": sid, "request_id": request["request_id"], "choice": "once"},
    )
    assert error["code"] == 4001
    assert current_host().sessions[sid].pending


async def test_stale_request_id_is_a_clear_error(connect, alice):
    """Tests that an answer to an unknown request id names request_id."""
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    error = await rpc.error(
        "approval.respond", {"session_id": sid, "request_id": "deadbeef", "choice": "deny"}
    )
    assert error["code"] == -32602 and "request_id" in error["message"]


async def test_interrupt_ends_a_running_turn_at_once(connect, alice):
    """Tests that session.interrupt ends a turn mid-sleep: its message.complete comes marked
    interrupted, long before the hour the turn would take."""
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    turn_id = (await rpc.call("prompt.submit", {"session_id": sid, "text": "!sleep 3600 long"}))[
        "turn_id"
    ]
    await rpc.event("message.start", turn_id=turn_id)
    assert await rpc.call("session.interrupt", {"session_id": sid}) == {"interrupted": True}
    complete = (await rpc.event("message.complete", turn_id=turn_id))["payload"]
    assert complete["interrupted"] is True


async def test_interrupted_partial_text_is_stored(connect, alice):
    """Tests that the partial reply of an interrupted turn lands in the transcript."""
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    turn_id = (await rpc.call("prompt.submit", {"session_id": sid, "text": "!sleep 1 a b c d e"}))[
        "turn_id"
    ]
    await rpc.event("message.delta", turn_id=turn_id)
    await rpc.call("session.interrupt", {"session_id": sid})
    complete = (await rpc.event("message.complete", turn_id=turn_id))["payload"]
    again = await connect(alice)
    resumed = await again.call("session.resume", {"session_id": sid})
    last = without_id(resumed["messages"][-1])
    assert last == {"role": "assistant", "content": complete["text"]}


async def test_coalesced_deltas_still_concatenate_to_the_complete_text(connect, alice, settings):
    """Tests that with coalescing on, fewer frames carry exactly the same text."""
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "DELTA_COALESCE_MS": 30}
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    text = " ".join(f"word{i}" for i in range(2000))
    complete = await rpc.turn(sid, text)
    deltas = rpc.deltas(complete["turn_id"])
    assert "".join(deltas) == complete["text"] == text
    assert len(deltas) < 200


async def test_resume_from_a_seq_the_session_never_reached_reports_a_gap(connect, alice):
    """Tests that a last_seq beyond the session's latest seq (events lost with a crashed host)
    gives gap true: those events cannot be replayed."""
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    await rpc.turn(sid, "a b")
    resumed = await rpc.call("session.resume", {"session_id": sid, "last_seq": 50})
    assert resumed["gap"] is True and resumed["replayed"] == 0


async def crash(host):
    """Drop the worker's host as kill -9 would: no teardown, and no write reaches the
    database from now on; the next connection starts a new host."""
    for task in (host.host_channel.task, host.groups.periodic.task, host.settler.task):
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    await host.reaper.stop()
    await host.store.abandon()
    for session in host.sessions.values():
        host.reaper.cancel(session)
        if session.turn is not None and session.turn.task is not None:
            session.turn.task.cancel()
            await asyncio.gather(session.turn.task, return_exceptions=True)
    host_module._host = None


async def test_seq_after_a_crash_mid_turn_continues_past_every_seq_issued(connect, alice):
    """Tests that a session cold-started after its host crashed mid-turn (its last_seq saved
    only at the end of the turn before) never issues again a seq a client may have seen,
    and that resuming from such a seq reports a gap."""
    first = await connect(alice)
    sid = (await first.call("session.create"))["session_id"]
    await first.turn(sid, "before")
    await first.call("prompt.submit", {"session_id": sid, "text": "!tool ls"})
    seen = (await first.event("approval.request"))["seq"]
    await first.connection.close()
    host = current_host()
    await host.store.flush()
    await crash(host)
    second = await connect(alice)
    resumed = await second.call("session.resume", {"session_id": sid, "last_seq": seen})
    assert resumed["gap"] is True and resumed["last_seq"] >= seen
    turn_id = (await second.call("prompt.submit", {"session_id": sid, "text": "after"}))["turn_id"]
    complete = await second.event("message.complete", turn_id=turn_id)
    seqs = [complete["seq"], *(e["seq"] for e in second.events if e.get("session_id") == sid)]
    assert min(seqs) > seen


def small_buffer(settings, events: int = 5) -> None:
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "REPLAY_BUFFER_EVENTS": events}


async def test_fresh_resume_after_the_buffer_dropped_the_start_gets_the_text_so_far(
    connect, alice, settings
):
    """Tests that a resume without last_seq, late in a long turn, loses none of its words."""
    small_buffer(settings)
    first = await connect(alice)
    sid = (await first.call("session.create"))["session_id"]
    turn_id = (
        await first.call("prompt.submit", {"session_id": sid, "text": f"!sleep 0.6 {WORDS}"})
    )["turn_id"]
    for _ in range(10):
        await first.event("message.delta", turn_id=turn_id)
    await first.connection.close()
    second = await connect(alice)
    resumed = await second.call("session.resume", {"session_id": sid})
    running = resumed["running_turn"]
    assert running["turn_id"] == turn_id and resumed["gap"] is False
    assert running["text"] and WORDS.startswith(running["text"])
    complete = (await second.event("message.complete", turn_id=turn_id))["payload"]
    later = turn_deltas(second.events, turn_id)
    assert later[0]["seq"] > running["seq"]
    assert running["text"] + "".join(e["payload"]["text"] for e in later) == complete["text"]
    assert complete["text"] == WORDS


async def test_resume_from_a_seq_the_buffer_dropped_reports_a_gap_and_the_text_so_far(
    connect, alice, settings
):
    """Tests that a last_seq older than the buffer, mid-turn, gives gap and the whole text."""
    small_buffer(settings)
    first = await connect(alice)
    watcher = await connect(alice)
    sid = (await first.call("session.create"))["session_id"]
    await watcher.call("session.resume", {"session_id": sid})
    turn_id = (
        await first.call("prompt.submit", {"session_id": sid, "text": f"!sleep 0.6 {WORDS}"})
    )["turn_id"]
    for _ in range(3):
        seen = (await first.event("message.delta", turn_id=turn_id))["seq"]
    await first.connection.close()
    for _ in range(12):
        await watcher.event("message.delta", turn_id=turn_id)
    second = await connect(alice)
    resumed = await second.call("session.resume", {"session_id": sid, "last_seq": seen})
    running = resumed["running_turn"]
    assert resumed["gap"] is True and running["seq"] > seen
    complete = (await second.event("message.complete", turn_id=turn_id))["payload"]
    later = turn_deltas(second.events, turn_id)
    assert running["text"] + "".join(e["payload"]["text"] for e in later) == complete["text"]


async def test_resume_within_the_buffer_has_no_running_turn(connect, alice, settings):
    """Tests that a replay reaching back to what the client saw adds no running_turn."""
    small_buffer(settings, 1000)
    first = await connect(alice)
    sid = (await first.call("session.create"))["session_id"]
    turn_id = (
        await first.call("prompt.submit", {"session_id": sid, "text": f"!sleep 0.4 {WORDS}"})
    )["turn_id"]
    await first.event("message.delta", turn_id=turn_id)
    second = await connect(alice)
    resumed = await second.call("session.resume", {"session_id": sid})
    assert "running_turn" not in resumed
    await second.event("message.complete", turn_id=turn_id)
