"""Session methods end to end through the consumer: lifecycle, turns, questions, slash."""

import asyncio
import json

import pytest

from gateway_app.models import GatewaySession, Message, SessionStatus
from gateway_app.rpc.context import CallContext, Caller
from gateway_app.rpc.errors import RpcError
from gateway_app.sessions.host import current_host, get_host
from gateway_app.slash.client import SlashClient
from tests.support.procs import assert_gone, is_running

pytestmark = pytest.mark.django_db(transaction=True)


async def create(rpc, title="t"):
    return (await rpc.call("session.create", {"title": title}))["session_id"]


async def test_create_returns_id_title_and_created_at(connect, alice):
    """Tests that session.create answers session_id, title and created_at."""
    rpc = await connect(alice)
    result = await rpc.call("session.create", {"title": "hello"})
    assert len(result["session_id"]) == 32 and result["title"] == "hello"
    assert result["created_at"]


async def test_create_and_list_report_the_same_created_at(connect, alice):
    """Tests that the created_at session.create answers is the one stored and listed."""
    rpc = await connect(alice)
    result = await rpc.call("session.create")
    (listed,) = (await rpc.call("session.list"))["sessions"]
    assert listed["created_at"] == result["created_at"]


async def test_list_shows_only_the_callers_sessions(connect, alice, bob):
    """Tests that session.list shows the caller's own sessions only, with their fields."""
    a, b = await connect(alice), await connect(bob)
    mine = await create(a, "mine")
    await create(b, "theirs")
    sessions = (await a.call("session.list"))["sessions"]
    assert [s["session_id"] for s in sessions] == [mine]
    assert set(sessions[0]) == {
        "session_id",
        "title",
        "status",
        "attached",
        "created_at",
        "last_activity",
        "messages",
    }
    assert sessions[0]["status"] == "live" and sessions[0]["attached"] is True


async def test_events_carry_session_id_and_increasing_seq(connect, alice):
    """Tests that session events carry session_id and a per-session seq from 1."""
    rpc = await connect(alice)
    sid = await create(rpc)
    await rpc.turn(sid, "one two three")
    seqs = [e["seq"] for e in rpc.events if e["session_id"] == sid]
    assert seqs == list(range(1, len(seqs) + 1))


async def test_deltas_concatenate_to_the_complete_text(connect, alice):
    """Tests that a turn's message.delta texts concatenate to message.complete.text."""
    rpc = await connect(alice)
    sid = await create(rpc)
    complete = await rpc.turn(sid, "the quick  brown fox")
    assert "".join(rpc.deltas(complete["turn_id"])) == complete["text"] == "the quick  brown fox"
    assert len(rpc.deltas(complete["turn_id"])) == 4


async def test_turn_is_stored_in_the_transcript(connect, alice):
    """Tests that the user prompt and assistant reply are stored as messages."""
    rpc = await connect(alice)
    sid = await create(rpc)
    await rpc.turn(sid, "remember me")
    await current_host().store.flush()
    rows = [(m.role, m.content) async for m in Message.objects.filter(session_id=sid)]
    assert rows == [("user", "remember me"), ("assistant", "remember me")]


async def test_every_attached_connection_sees_the_prompt_before_its_reply(connect, alice):
    """Tests that a second connection attached to the session receives message.user with the
    submitted text and turn_id, in seq order right before the turn's message.start."""
    first, second = await connect(alice), await connect(alice)
    sid = await create(first)
    await second.call("session.resume", {"session_id": sid})
    turn_id = (await first.call("prompt.submit", {"session_id": sid, "text": "from tab one"}))[
        "turn_id"
    ]
    await second.event("message.complete", turn_id=turn_id)
    events = [(e["type"], e["seq"], e["payload"]) for e in second.events[:2]]
    user_seq = events[0][1]
    assert events == [
        ("message.user", user_seq, {"turn_id": turn_id, "text": "from tab one"}),
        ("message.start", user_seq + 1, {"turn_id": turn_id}),
    ]


async def test_resume_with_last_seq_replays_the_prompt_of_a_turn(connect, alice):
    """Tests that message.user is in the replay buffer like every event: a resume from before
    the turn gets it back, ahead of the turn's message.start."""
    rpc = await connect(alice)
    sid = await create(rpc)
    await rpc.turn(sid, "replay me")
    again = await connect(alice)
    await again.call("session.resume", {"session_id": sid, "last_seq": 0})
    await again.event("message.complete")
    assert [e["type"] for e in again.events[:2]] == ["message.user", "message.start"]
    assert again.events[0]["payload"]["text"] == "replay me"


async def test_disconnect_detaches_and_resume_returns_the_transcript(connect, alice):
    """Tests that a session survives its socket and resume re-attaches with the transcript."""
    first = await connect(alice)
    sid = await create(first)
    await first.turn(sid, "hello again")
    await first.connection.close()
    second = await connect(alice)
    listed = (await second.call("session.list"))["sessions"]
    assert listed[0]["status"] == "detached" and listed[0]["attached"] is False
    result = await second.call("session.resume", {"session_id": sid})
    assert result["status"] == "live"
    assert [(m["role"], m["content"]) for m in result["messages"]] == [
        ("user", "hello again"),
        ("assistant", "hello again"),
    ]
    complete = await second.turn(sid, "still here")
    assert complete["text"] == "still here"


async def test_resume_is_idempotent(connect, alice):
    """Tests that resuming the same session twice keeps one live session."""
    rpc = await connect(alice)
    sid = await create(rpc)
    await rpc.call("session.resume", {"session_id": sid})
    await rpc.call("session.resume", {"session_id": sid})
    assert list(current_host().sessions) == [sid]


async def test_resume_of_a_closed_session_cold_starts_from_the_transcript(connect, alice):
    """Tests that a closed session can be resumed from its stored transcript."""
    rpc = await connect(alice)
    sid = await create(rpc)
    await rpc.turn(sid, "kept")
    await rpc.call("session.close", {"session_id": sid})
    result = await rpc.call("session.resume", {"session_id": sid})
    assert [m["content"] for m in result["messages"]] == ["kept", "kept"]
    assert result["status"] == "live"


async def test_close_emits_session_closed_and_marks_the_row(connect, alice):
    """Tests that session.close emits session.closed {reason: closed} and stores the status."""
    rpc = await connect(alice)
    sid = await create(rpc)
    assert await rpc.call("session.close", {"session_id": sid}) == {"closed": True}
    event = await rpc.event("session.closed")
    assert event["payload"] == {"reason": "closed"} and event["session_id"] == sid
    await current_host().store.flush()
    row = await GatewaySession.objects.aget(pk=sid)
    assert (row.status, row.close_reason) == ("closed", "closed")


async def test_close_ends_the_slash_worker_process(connect, alice):
    """Tests that session.close ends the session's slash-worker subprocess."""
    rpc = await connect(alice)
    sid = await create(rpc)
    await rpc.call("slash.exec", {"session_id": sid, "command": "/version"})
    pid = current_host().sessions[sid].slash.pid
    assert is_running(pid)
    await rpc.call("session.close", {"session_id": sid})
    await assert_gone([pid], within=0)


async def test_slash_worker_is_spawned_lazily_on_first_slash_exec(connect, alice):
    """Tests that no slash worker exists until the first slash.exec."""
    rpc = await connect(alice)
    sid = await create(rpc)
    assert current_host().sessions[sid].slash is None
    output = (await rpc.call("slash.exec", {"session_id": sid, "command": "/help"}))["output"]
    assert "/title" in output
    assert current_host().sessions[sid].slash.alive


async def test_slash_title_renames_the_session(connect, alice):
    """Tests that /title changes the session title seen by session.list."""
    rpc = await connect(alice)
    sid = await create(rpc, "old")
    await rpc.call("slash.exec", {"session_id": sid, "command": "/title Shiny new"})
    sessions = (await rpc.call("session.list"))["sessions"]
    assert sessions[0]["title"] == "Shiny new"


async def test_unknown_slash_command_gives_a_helpful_message(connect, alice):
    """Tests that an unknown slash command answers a hint instead of failing."""
    rpc = await connect(alice)
    sid = await create(rpc)
    output = (await rpc.call("slash.exec", {"session_id": sid, "command": "/hepl"}))["output"]
    assert "/help" in output


async def test_slash_exec_requires_a_leading_slash(connect, alice):
    """Tests that slash.exec rejects a command without '/' naming the field."""
    rpc = await connect(alice)
    sid = await create(rpc)
    error = await rpc.error("slash.exec", {"session_id": sid, "command": "help"})
    assert error["code"] == -32602 and "command" in error["message"]


async def test_commands_catalog_lists_every_command(connect, alice):
    """Tests that commands.catalog lists the slash commands with description and usage."""
    rpc = await connect(alice)
    commands = (await rpc.call("commands.catalog"))["commands"]
    names = {c["name"] for c in commands}
    assert {"/help", "/title", "/status", "/history", "/clear", "/version", "/skin"} <= names
    assert all(c["description"] and c["usage"] for c in commands)


async def test_complete_slash_completes_a_prefix(connect, alice):
    """Tests that complete.slash completes '/he' to '/help'."""
    rpc = await connect(alice)
    assert "/help" in (await rpc.call("complete.slash", {"text": "/he"}))["completions"]


async def test_complete_slash_of_text_without_a_slash_completes_to_nothing(connect, alice):
    """Tests that complete.slash of text not starting with "/" answers no completions."""
    rpc = await connect(alice)
    assert await rpc.call("complete.slash", {"text": "he"}) == {"completions": []}


async def test_complete_slash_of_a_non_string_text_is_invalid_params(connect, alice):
    """Tests that complete.slash with a non-string text is -32602 naming the field."""
    rpc = await connect(alice)
    error = await rpc.error("complete.slash", {"text": 3})
    assert error["code"] == -32602 and "text" in error["message"]


async def test_interrupt_stops_the_turn_and_keeps_partial_text(connect, alice):
    """Tests that session.interrupt ends the turn with interrupted true and partial text."""
    rpc = await connect(alice)
    sid = await create(rpc)
    result = await rpc.call(
        "prompt.submit", {"session_id": sid, "text": "!sleep 2 a b c d e f g h"}
    )
    await rpc.event("message.delta", turn_id=result["turn_id"])
    assert (await rpc.call("session.interrupt", {"session_id": sid}))["interrupted"] is True
    complete = (await rpc.event("message.complete", turn_id=result["turn_id"]))["payload"]
    assert complete["interrupted"] is True
    assert complete["text"].startswith("a") and complete["text"] != "a b c d e f g h"


async def test_interrupt_without_a_running_turn_reports_false(connect, alice):
    """Tests that session.interrupt on an idle session answers interrupted false."""
    rpc = await connect(alice)
    sid = await create(rpc)
    assert (await rpc.call("session.interrupt", {"session_id": sid}))["interrupted"] is False


@pytest.mark.parametrize(("choice", "result"), [("once", "ran: ls -l"), ("deny", "denied: ls -l")])
async def test_tool_directive_asks_approval_and_obeys_the_answer(connect, alice, choice, result):
    """Tests that !tool asks approval.request for terminal and reports ran/denied."""
    rpc = await connect(alice)
    sid = await create(rpc)
    submitted = await rpc.call("prompt.submit", {"session_id": sid, "text": "!tool ls -l"})
    request = (await rpc.event("approval.request"))["payload"]
    assert request["tool"] == "terminal" and "ls -l" in request["description"]
    await rpc.call(
        "approval.respond",
        {"session_id": sid, "request_id": request["request_id"], "choice": choice},
    )
    tool = (await rpc.event("tool.complete"))["payload"]
    assert tool["result"] == result
    complete = (await rpc.event("message.complete", turn_id=submitted["turn_id"]))["payload"]
    assert complete["text"] == result


async def test_session_approval_is_remembered_for_the_same_command(connect, alice):
    """Tests that approving 'session' skips the question when the same command runs again."""
    rpc = await connect(alice)
    sid = await create(rpc)
    await rpc.call("prompt.submit", {"session_id": sid, "text": "!tool first"})
    request = (await rpc.event("approval.request"))["payload"]
    await rpc.call(
        "approval.respond",
        {"session_id": sid, "request_id": request["request_id"], "choice": "session"},
    )
    await rpc.event("message.complete")
    complete = await rpc.turn(sid, "!tool first")
    assert complete["text"] == "ran: first"
    assert not [e for e in rpc.events if e["type"] == "approval.request"]


async def test_session_approval_does_not_cover_a_different_command(connect, alice):
    """Tests that approving 'session' for one command still asks about another one."""
    rpc = await connect(alice)
    sid = await create(rpc)
    await rpc.call("prompt.submit", {"session_id": sid, "text": "!tool echo harmless"})
    request = (await rpc.event("approval.request"))["payload"]
    await rpc.call(
        "approval.respond",
        {"session_id": sid, "request_id": request["request_id"], "choice": "session"},
    )
    await rpc.event("message.complete")
    await rpc.call("prompt.submit", {"session_id": sid, "text": "!tool echo DIFFERENT; id -u"})
    request = (await rpc.event("approval.request"))["payload"]
    assert request["description"] == "Run command: echo DIFFERENT; id -u"


async def test_clarify_directive_echoes_the_answer(connect, alice):
    """Tests that !clarify asks clarify.request and then echoes the answer."""
    rpc = await connect(alice)
    sid = await create(rpc)
    submitted = await rpc.call("prompt.submit", {"session_id": sid, "text": "!clarify Which one?"})
    request = (await rpc.event("clarify.request"))["payload"]
    assert request["question"] == "Which one?"
    await rpc.call(
        "clarify.respond",
        {"session_id": sid, "request_id": request["request_id"], "answer": "the blue one"},
    )
    complete = (await rpc.event("message.complete", turn_id=submitted["turn_id"]))["payload"]
    assert complete["text"] == "the blue one"


async def test_answering_twice_is_a_clear_error(connect, alice):
    """Tests that a second answer to the same request is rejected naming request_id."""
    rpc = await connect(alice)
    sid = await create(rpc)
    await rpc.call("prompt.submit", {"session_id": sid, "text": "!clarify Q?"})
    request = (await rpc.event("clarify.request"))["payload"]
    params = {"session_id": sid, "request_id": request["request_id"], "answer": "x"}
    await rpc.call("clarify.respond", params)
    error = await rpc.error("clarify.respond", params)
    assert error["code"] == -32602 and "request_id" in error["message"]


async def test_approval_answer_to_a_clarify_request_is_rejected(connect, alice):
    """Tests that approval.respond for a clarify request id is rejected."""
    rpc = await connect(alice)
    sid = await create(rpc)
    await rpc.call("prompt.submit", {"session_id": sid, "text": "!clarify Q?"})
    request = (await rpc.event("clarify.request"))["payload"]
    error = await rpc.error(
        "approval.respond",
        {"session_id": sid, "request_id": request["request_id"], "choice": "once"},
    )
    assert error["code"] == -32602
    await rpc.call("session.interrupt", {"session_id": sid})


async def test_prompt_submit_reattaches_a_detached_session(connect, alice):
    """Tests that prompt.submit from a new connection re-attaches a detached session."""
    first = await connect(alice)
    sid = await create(first)
    await first.connection.close()
    second = await connect(alice)
    complete = await second.turn(sid, "back")
    assert complete["text"] == "back"
    assert current_host().sessions[sid].status == "live"


async def test_empty_prompt_is_invalid_params(connect, alice):
    """Tests that an empty prompt text is rejected naming the field."""
    rpc = await connect(alice)
    sid = await create(rpc)
    error = await rpc.error("prompt.submit", {"session_id": sid, "text": "   "})
    assert error["code"] == -32602 and "text" in error["message"]


async def test_other_users_session_is_indistinguishable_from_unknown(connect, alice, bob):
    """Tests that another user's session id gets exactly the unknown-session error."""
    a, b = await connect(alice), await connect(bob)
    sid = await create(a)
    foreign = await b.error("session.resume", {"session_id": sid})
    unknown = await b.error("session.resume", {"session_id": "f" * 32})
    assert foreign == unknown and foreign["code"] == 4001
    await asyncio.sleep(0)


async def test_session_of_a_dead_worker_lists_as_detached_and_resumes_cold(connect, alice):
    """Tests that a row left 'live' by a worker that died lists as detached and resumes."""
    row = await GatewaySession.objects.acreate(
        user=alice, title="orphan", status="live", attached=1, host_channel="specific.gone!x"
    )
    message = await Message.objects.acreate(session=row, role="user", content="from before")
    rpc = await connect(alice)
    (listed,) = (await rpc.call("session.list"))["sessions"]
    assert (listed["status"], listed["attached"]) == ("detached", False)
    resumed = await rpc.call("session.resume", {"session_id": row.pk})
    assert resumed["messages"] == [{"id": message.pk, "role": "user", "content": "from before"}]


async def test_closing_a_session_of_a_dead_worker_finalizes_its_row(connect, alice):
    """Tests that session.close of a session a dead worker left open (live nowhere) marks
    its row closed, as closing a live session does, and lists it closed."""
    row = await GatewaySession.objects.acreate(
        user=alice, status="live", attached=1, host_channel="specific.gone!x", last_seq=7
    )
    rpc = await connect(alice)
    assert await rpc.call("session.close", {"session_id": row.pk}) == {"closed": True}
    await current_host().store.flush()
    await row.arefresh_from_db()
    assert (row.status, row.close_reason, row.attached) == ("closed", "closed", 0)
    assert row.closed_at is not None and row.last_seq > 7
    (listed,) = (await rpc.call("session.list"))["sessions"]
    assert listed["status"] == "closed"


async def test_slash_exec_cut_short_by_session_close_answers_4001(connect, alice):
    """Tests that a slash command whose session is closed while it runs (here: while its
    worker is still starting) gets 4001 like any call on a closed session, not -32603."""
    first, second = await connect(alice), await connect(alice)
    sid = await create(first)
    await second.call("session.resume", {"session_id": sid})
    slash = asyncio.create_task(
        first.error("slash.exec", {"session_id": sid, "command": "/status"})
    )
    for _ in range(200):
        session = current_host().sessions.get(sid)
        if session is not None and session.slash is not None:
            break
        await asyncio.sleep(0.005)
    await second.call("session.close", {"session_id": sid})
    error = await slash
    assert error["code"] == 4001


async def test_a_connection_older_than_the_layers_group_expiry_still_gets_events(
    connect, alice, settings
):
    """Tests that the host renews group memberships (GROUP_REFRESH_S), so a socket attached
    longer than the channel layer's group_expiry still receives its session's events."""
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": 5000, "expiry": 60, "group_expiry": 1},
        }
    }
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "GROUP_REFRESH_S": 0.2}
    rpc = await connect(alice)
    sid = await create(rpc)
    await asyncio.sleep(1.5)
    complete = await asyncio.wait_for(rpc.turn(sid, "still here"), 5)
    assert "".join(rpc.deltas(complete["turn_id"])) == "still here"


async def test_starting_host_marks_sessions_of_stopped_workers_detached(connect, alice):
    """Tests that a host starting up marks the rows a stopped worker left saying live,
    running or attached as detached (what they are: resumable from their transcripts), and
    leaves closed rows, detached ones and its own sessions as they are."""
    gone = "specific..inmemory!stopped"
    await GatewaySession.objects.abulk_create(
        [
            GatewaySession(id="a" * 32, user=alice, status="live", attached=2, host_channel=gone),
            GatewaySession(id="b" * 32, user=alice, status="running", host_channel=gone),
            GatewaySession(id="c" * 32, user=alice, status="closed", host_channel=gone),
        ]
    )
    rpc = await connect(alice)  # starts the host
    mine = await create(rpc)
    host = current_host()
    await host.settler.task
    await host.store.flush()
    rows = {r.id: (r.status, r.attached) async for r in GatewaySession.objects.all()}
    assert rows == {
        "a" * 32: ("detached", 0),
        "b" * 32: ("detached", 0),
        "c" * 32: ("closed", 0),
        mine: ("live", 1),
    }


async def test_concurrent_submits_start_one_turn(alice, fresh_host, monkeypatch):
    """Tests that two prompts submitted at once from two connections start one turn: the
    other is busy (4009), even when joining the session's group waits on the layer."""
    host = await get_host()
    layer = host.layer
    callers = [CallContext(Caller(alice.pk, "alice"), await layer.new_channel()) for _ in "abc"]
    for ctx in callers:
        host.connection_opened(ctx)
    session = await host.create(callers[0], "t")
    group_add = layer.group_add

    async def yielding_group_add(group, channel):
        await asyncio.sleep(0)  # as a Redis round trip would
        await group_add(group, channel)

    monkeypatch.setattr(layer, "group_add", yielding_group_add)
    results = await asyncio.gather(
        host.submit(callers[1], session.id, "!sleep 5 one"),
        host.submit(callers[2], session.id, "!sleep 5 two"),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["SessionBusy", "str"]
    assert [r.code for r in results if isinstance(r, RpcError)] == [4009]
    await host.close(callers[0], session.id)


@pytest.mark.parametrize("failing_role", ["user", "assistant"])
async def test_a_crashing_turn_reports_an_error_and_frees_the_session(
    connect, alice, monkeypatch, failing_role
):
    """Tests that a turn crashing outside its backend (here: storing its user prompt or its
    reply) sends an error event and one message.complete, and the next prompt is accepted."""
    rpc = await connect(alice)
    sid = await create(rpc)
    store = current_host().store
    add_message = store.add_message
    failures = []

    def failing_add_message(session_id, role, content, **kwargs):
        if role == failing_role and not failures:
            failures.append(role)
            raise RuntimeError("database bug")
        add_message(session_id, role, content, **kwargs)

    monkeypatch.setattr(store, "add_message", failing_add_message)
    submitted = await rpc.call("prompt.submit", {"session_id": sid, "text": "boom"})
    error = await rpc.event("error")
    assert error["payload"]["message"] == "internal error: RuntimeError"
    await rpc.event("message.complete", turn_id=submitted["turn_id"])
    complete = await rpc.turn(sid, "again")
    assert complete["text"] == "again"
    assert [e for e in rpc.events if e["type"] == "message.complete"] == []


async def test_interrupt_in_the_same_frame_as_the_prompt_interrupts_the_turn(connect, alice):
    """Tests that session.interrupt sent right behind prompt.submit (one frame), before the
    backend started, stops the turn: interrupted true, then message.complete interrupted
    true with no text."""
    rpc = await connect(alice)
    sid = await create(rpc)
    submit = {"jsonrpc": "2.0", "id": "submit", "method": "prompt.submit"}
    interrupt = {"jsonrpc": "2.0", "id": "interrupt", "method": "session.interrupt"}
    await rpc.send_text(
        json.dumps({**submit, "params": {"session_id": sid, "text": "a b c d"}})
        + "\n"
        + json.dumps({**interrupt, "params": {"session_id": sid}})
    )
    turn_id = (await rpc.response("submit"))["result"]["turn_id"]
    assert (await rpc.response("interrupt"))["result"] == {"interrupted": True}
    complete = (await rpc.event("message.complete", turn_id=turn_id))["payload"]
    assert (complete["interrupted"], complete["text"]) == (True, "")
    assert rpc.deltas(turn_id) == []


async def test_only_slash_commands_that_read_the_transcript_are_sent_it(
    connect, alice, monkeypatch
):
    """Tests that the transcript goes to the slash worker with /history and /status only:
    /help and the other commands are not sent (nor encoded) the session's messages."""
    sent = {}
    execute = SlashClient.execute

    async def spy(self, command, context):
        sent[command] = "messages" in context
        return await execute(self, command, context)

    monkeypatch.setattr(SlashClient, "execute", spy)
    rpc = await connect(alice)
    sid = await create(rpc)
    await rpc.turn(sid, "hello")
    for command in ("/help", "/version", "/title x", "/nope", "/HISTORY", "/status"):
        await rpc.call("slash.exec", {"session_id": sid, "command": command})
    assert sent == {
        "/help": False,
        "/version": False,
        "/title x": False,
        "/nope": False,
        "/HISTORY": True,
        "/status": True,
    }


async def test_slash_history_shows_the_transcript(connect, alice):
    """Tests that /history prints the session's messages."""
    rpc = await connect(alice)
    sid = await create(rpc)
    await rpc.turn(sid, "hello there")
    output = (await rpc.call("slash.exec", {"session_id": sid, "command": "/history"}))["output"]
    assert output.splitlines() == ["user: hello there", "assistant: hello there"]


async def test_a_turn_cut_short_by_giving_the_session_up_stores_no_reply(connect, alice):
    """Tests that when a host gives a session up to another host (its heartbeat lapsed), the
    turn it was running ends without writing a reply into the transcript the new host owns."""
    rpc = await connect(alice)
    sid = await create(rpc)
    await rpc.call("prompt.submit", {"session_id": sid, "text": "!sleep 30 long turn"})
    await rpc.event("message.start")
    host = current_host()
    session = host.sessions[sid]
    turn = session.turn
    host.give_up(session)
    await asyncio.wait_for(session.closed.wait(), 5)
    assert turn.task.done()
    await host.store.flush()
    roles = [
        role
        async for role in Message.objects.filter(session_id=sid)
        .order_by("id")
        .values_list("role", flat=True)
    ]
    assert roles == ["user"]


### State kept in the open ###


async def test_a_connection_keeps_no_host_bookkeeping_in_its_counters(fresh_host, alice):
    """Tests that opening a connection leaves its counters (its close line) empty: what the
    host needs per connection is a field of the host."""
    host = await get_host()
    ctx = CallContext(Caller(alice.pk, alice.username), await host.layer.new_channel())
    host.connection_opened(ctx)
    assert dict(ctx.counters) == {}


async def test_the_close_line_counts_the_sessions_reaped_while_the_connection_was_open(
    fresh_host, alice
):
    """Tests that a connection's close counts the reaps of its user since it opened, not
    those before."""
    host = await get_host()
    first = CallContext(Caller(alice.pk, alice.username), await host.layer.new_channel())
    host.connection_opened(first)
    await host.teardown(await host.create(first, "before"), "reaped")
    second = CallContext(Caller(alice.pk, alice.username), await host.layer.new_channel())
    host.connection_opened(second)
    await host.teardown(await host.create(second, "during"), "reaped")
    await host.connection_closed(second)
    assert second.counters["reaped"] == 1
    assert second.channel_name not in host.reaped_at_open


async def test_a_session_given_up_is_flagged_so_and_keeps_no_close_reason(fresh_host, alice):
    """Tests that giving a session up marks it given_up rather than faking a close reason."""
    host = await get_host()
    ctx = CallContext(Caller(alice.pk, alice.username), await host.layer.new_channel())
    host.connection_opened(ctx)
    session = await host.create(ctx, "moved away")
    host.give_up(session)
    await asyncio.wait_for(session.closed.wait(), 5)
    assert session.given_up and session.close_reason == ""


async def test_a_live_sessions_status_is_a_session_status(fresh_host, alice):
    """Tests that the host reports statuses as SessionStatus members (the same wire
    strings)."""
    host = await get_host()
    ctx = CallContext(Caller(alice.pk, alice.username), await host.layer.new_channel())
    host.connection_opened(ctx)
    session = await host.create(ctx, "t")
    assert session.status is SessionStatus.LIVE
    await host.detach(ctx, session)
    assert session.status is SessionStatus.DETACHED
