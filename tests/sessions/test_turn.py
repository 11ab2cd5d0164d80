"""Turns: a reply longer than MAX_MESSAGE_CHARS is cut, marked, and the client told."""

from __future__ import annotations

import pytest

from gateway_app.models import Message
from gateway_app.sessions.host import current_host
from gateway_app.sessions.turn import TRUNCATED_MARK

pytestmark = pytest.mark.django_db(transaction=True)

LONG_PROMPT = "word " * 30  # echoed back: a 150-character reply


async def test_a_reply_longer_than_max_message_chars_is_cut_and_marked(connect, alice, limits):
    """Tests that message.complete of a too-long reply says truncated and its text is the
    first MAX_MESSAGE_CHARS characters followed by the visible marker."""
    limits(MAX_MESSAGE_CHARS=40)
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    complete = await rpc.turn(sid, LONG_PROMPT)
    assert complete["truncated"] is True and complete["interrupted"] is False
    assert complete["text"] == LONG_PROMPT.strip()[:40] + TRUNCATED_MARK


async def test_the_deltas_of_a_cut_reply_add_up_to_its_complete_text(connect, alice, limits):
    """Tests that the streamed deltas stop at the cut and carry the marker, so a client
    that showed them shows what message.complete says."""
    limits(MAX_MESSAGE_CHARS=40)
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    complete = await rpc.turn(sid, LONG_PROMPT)
    assert "".join(rpc.deltas(complete["turn_id"])) == complete["text"]


async def test_a_cut_reply_is_stored_and_resumed_marked_truncated(connect, alice, limits):
    """Tests that the stored assistant message and its session.resume entry say truncated."""
    limits(MAX_MESSAGE_CHARS=40)
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    complete = await rpc.turn(sid, LONG_PROMPT)
    await current_host().store.flush()
    row = await Message.objects.filter(session_id=sid, role="assistant").aget()
    assert row.content == complete["text"] and row.data == {"truncated": True}
    resumed = await rpc.call("session.resume", {"session_id": sid})
    assert resumed["messages"][-1]["truncated"] is True


async def test_a_reply_within_max_message_chars_is_not_marked(connect, alice, limits):
    """Tests that a reply of exactly MAX_MESSAGE_CHARS characters is whole and unmarked."""
    limits(MAX_MESSAGE_CHARS=len(LONG_PROMPT.strip()))
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    complete = await rpc.turn(sid, LONG_PROMPT)
    assert complete["text"] == LONG_PROMPT.strip() and "truncated" not in complete


async def test_the_session_takes_a_new_turn_after_a_cut_reply(connect, alice, limits):
    """Tests that cutting a reply stops its backend cleanly: the next prompt runs."""
    limits(MAX_MESSAGE_CHARS=40)
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    await rpc.turn(sid, LONG_PROMPT)
    assert (await rpc.turn(sid, "again"))["text"] == "again"
