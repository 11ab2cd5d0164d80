"""session.resume returns the newest transcript that fits one frame, and says what it left."""

import json

import pytest

from gateway_app.models import Message
from gateway_app.sessions.host import current_host
from gateway_app.sessions.state import recent_messages

pytestmark = pytest.mark.django_db(transaction=True)


def history(*contents):
    return [
        {"role": "user" if i % 2 == 0 else "assistant", "content": c}
        for i, c in enumerate(contents)
    ]


def test_a_transcript_within_the_budget_is_returned_whole():
    """Tests that nothing is left out when everything fits."""
    messages, omitted = recent_messages(history("a", "b", "c"), 10_000)
    assert [m["content"] for m in messages] == ["a", "b", "c"] and omitted == 0


def test_the_oldest_messages_are_left_out_first():
    """Tests that the newest messages are kept, in order, and the rest counted."""
    messages, omitted = recent_messages(history("x" * 500, "y" * 500, "z" * 500), 1100)
    assert [m["content"][0] for m in messages] == ["y", "z"] and omitted == 1


def test_a_newest_message_larger_than_the_budget_is_cut_to_its_end():
    """Tests that a single huge message still shows its end, marked as cut."""
    messages, omitted = recent_messages(history("old", "a" * 5000 + "END"), 1000)
    (message,) = messages
    assert message["content"].startswith("[...] ") and message["content"].endswith("END")
    assert len(message["content"].encode()) <= 1000 and omitted == 1


async def test_resume_of_a_transcript_larger_than_a_frame_still_answers(connect, alice, settings):
    """Tests that resuming a session whose transcript exceeds MAX_FRAME_BYTES answers with
    the newest messages and "omitted", not with a 4013 for an oversized response."""
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "MAX_FRAME_BYTES": 8000}
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    for index in range(6):
        # Few long words: the echo agent streams a delta per word, and only the size counts.
        await rpc.turn(sid, f"turn{index} " + " ".join(["w" * 600] * 3))
    other = await connect(alice)
    resumed = await other.call("session.resume", {"session_id": sid})
    assert resumed["omitted"] > 0
    assert resumed["messages"][-1]["content"].startswith("turn5 ")
    assert len(json.dumps(resumed)) < 8000


def test_a_budget_below_the_per_message_overhead_keeps_no_content():
    """Tests that a budget too small for any content leaves only the cut mark, never the
    whole message."""
    (message,), omitted = recent_messages(history("a" * 100), 10)
    assert message["content"] == "[...] " and omitted == 0


async def test_a_live_session_keeps_only_the_newest_history_limit_messages(
    connect, alice, settings
):
    """Tests that a live session keeps the newest HISTORY_LIMIT messages in memory (its
    agent's context), while resume counts the older ones as omitted and the database keeps
    them all."""
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "HISTORY_LIMIT": 3}
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    for text in ("one", "two", "three"):
        await rpc.turn(sid, text)
    session = current_host().sessions[sid]
    assert [m["content"] for m in session.history] == ["two", "three", "three"]
    assert session.message_count == 6
    resumed = await rpc.call("session.resume", {"session_id": sid})
    assert [m["content"] for m in resumed["messages"]] == ["two", "three", "three"]
    assert resumed["omitted"] == 3
    await current_host().store.flush()
    assert await Message.objects.filter(session_id=sid).acount() == 6


async def test_a_cold_started_session_keeps_only_the_newest_history_limit_messages(
    connect, alice, settings
):
    """Tests that a session started again from the database holds the newest HISTORY_LIMIT
    messages in memory, and resume counts the rest as omitted."""
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    for text in ("one", "two", "three"):
        await rpc.turn(sid, text)
    await rpc.call("session.close", {"session_id": sid})
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "HISTORY_LIMIT": 2}
    resumed = await rpc.call("session.resume", {"session_id": sid})
    assert [m["content"] for m in resumed["messages"]] == ["three", "three"]
    assert resumed["omitted"] == 4
    assert len(current_host().sessions[sid].history) == 2
