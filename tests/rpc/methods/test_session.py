"""session.history: pages of a session's older transcript messages, from the database."""

from __future__ import annotations

import pytest

from gateway_app.models import GatewaySession, Message
from gateway_app.rpc.codes import INVALID_PARAMS, SESSION_NOT_FOUND
from gateway_app.sessions.host import current_host

pytestmark = pytest.mark.django_db(transaction=True)


async def stored_session(user, count: int) -> str:
    """A closed session of ``user`` with ``count`` messages m0..m{count-1}, oldest first."""
    row = await GatewaySession.objects.acreate(user=user, title="old", status="closed")
    await Message.objects.abulk_create(
        Message(session=row, role="user" if i % 2 == 0 else "assistant", content=f"m{i}")
        for i in range(count)
    )
    return row.id


async def test_history_without_before_gives_the_newest_page_oldest_first(connect, alice):
    """Tests that session.history with no cursor answers the newest `limit` messages, oldest
    first, each with its id, and says older ones follow."""
    sid = await stored_session(alice, 10)
    rpc = await connect(alice)
    page = await rpc.call("session.history", {"session_id": sid, "limit": 3})
    assert [m["content"] for m in page["messages"]] == ["m7", "m8", "m9"]
    assert all(isinstance(m["id"], int) for m in page["messages"])
    assert page["has_more"] is True
    assert page["next_before"] == page["messages"][0]["id"]


async def test_history_pages_back_to_the_first_message(connect, alice):
    """Tests that following next_before walks the whole transcript once, in order, and the
    last page says nothing more follows."""
    sid = await stored_session(alice, 7)
    rpc = await connect(alice)
    seen: list[str] = []
    before = None
    while True:
        params = {"session_id": sid, "limit": 3, **({"before": before} if before else {})}
        page = await rpc.call("session.history", params)
        seen[:0] = [m["content"] for m in page["messages"]]
        if not page["has_more"]:
            assert page["next_before"] is None
            break
        before = page["next_before"]
    assert seen == [f"m{i}" for i in range(7)]


async def test_history_pages_from_the_oldest_message_resume_gave(connect, alice, limits):
    """Tests that the id of the oldest message of session.resume is the `before` that gives
    exactly the messages resume counted as omitted."""
    limits(HISTORY_LIMIT=4)
    sid = await stored_session(alice, 10)
    rpc = await connect(alice)
    resumed = await rpc.call("session.resume", {"session_id": sid})
    assert [m["content"] for m in resumed["messages"]] == ["m6", "m7", "m8", "m9"]
    assert resumed["omitted"] == 6
    page = await rpc.call(
        "session.history",
        {"session_id": sid, "before": resumed["messages"][0]["id"], "limit": 200},
    )
    assert [m["content"] for m in page["messages"]] == [f"m{i}" for i in range(6)]
    assert page["has_more"] is False


async def test_history_of_a_live_session_includes_messages_not_yet_written(connect, alice):
    """Tests that session.history of a live session sees the turn that just ended, though
    the store writes behind."""
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    await rpc.turn(sid, "hello there")
    page = await rpc.call("session.history", {"session_id": sid})
    assert [(m["role"], m["content"]) for m in page["messages"]] == [
        ("user", "hello there"),
        ("assistant", "hello there"),
    ]


async def test_resume_of_a_live_session_gives_each_message_its_stored_id(connect, alice):
    """Tests that the messages of session.resume of a live session carry the ids of their
    database rows."""
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    await rpc.turn(sid, "one")
    resumed = await rpc.call("session.resume", {"session_id": sid})
    stored = [
        pk async for pk in Message.objects.filter(session_id=sid).values_list("id", flat=True)
    ]
    assert [m["id"] for m in resumed["messages"]] == stored


async def test_history_of_another_users_session_is_not_found(connect, alice, bob):
    """Tests that another user's session id gets the same 4001 as an unknown id."""
    sid = await stored_session(alice, 3)
    rpc = await connect(bob)
    theirs = await rpc.error("session.history", {"session_id": sid})
    unknown = await rpc.error("session.history", {"session_id": "0" * 32})
    assert theirs["code"] == unknown["code"] == SESSION_NOT_FOUND
    assert theirs["message"] == unknown["message"]


async def test_history_of_another_users_live_session_is_not_found(connect, alice, bob):
    """Tests that a session live on this worker is not readable by another user."""
    owner = await connect(alice)
    sid = (await owner.call("session.create"))["session_id"]
    await owner.turn(sid, "secret")
    rpc = await connect(bob)
    assert (await rpc.error("session.history", {"session_id": sid}))["code"] == SESSION_NOT_FOUND


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"limit": "5"}, "limit"),
        ({"before": 0}, "before"),
        ({"before": "abc"}, "before"),
    ],
)
async def test_bad_history_params_are_refused_naming_the_param(connect, alice, params, name):
    """Tests that an out-of-range or mistyped param gets -32602 naming it."""
    sid = await stored_session(alice, 1)
    rpc = await connect(alice)
    error = await rpc.error("session.history", {"session_id": sid, **params})
    assert error["code"] == INVALID_PARAMS and name in error["message"]


async def test_history_limit_defaults_to_fifty(connect, alice):
    """Tests that without `limit` a page holds 50 messages."""
    sid = await stored_session(alice, 60)
    rpc = await connect(alice)
    page = await rpc.call("session.history", {"session_id": sid})
    assert len(page["messages"]) == 50 and page["messages"][-1]["content"] == "m59"


async def test_history_does_not_start_the_session(connect, alice):
    """Tests that reading the history of a stored session leaves it stored, not live."""
    sid = await stored_session(alice, 2)
    rpc = await connect(alice)
    await rpc.call("session.history", {"session_id": sid})
    assert sid not in current_host().sessions
