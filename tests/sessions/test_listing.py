"""``session.list`` pages: newest activity first, keyset cursors, filters, bounded size."""

import json
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from gateway_app.models import GatewaySession, SessionStatus
from gateway_app.sessions.listing import Cursor

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def store_sessions(user, count, *, status=SessionStatus.CLOSED, title="s{}", start=0):
    """Insert ``count`` stored sessions, the i-th active i minutes after a fixed time."""
    base = timezone.now() - timedelta(days=30)
    rows = [
        GatewaySession(
            id=f"{start + i:032x}",
            user=user,
            title=title.format(start + i),
            status=status,
            created_at=base + timedelta(minutes=start + i),
            last_activity=base + timedelta(minutes=start + i),
        )
        for i in range(count)
    ]
    GatewaySession.objects.bulk_create(rows)
    return [row.id for row in reversed(rows)]


def ids(result):
    return [row["session_id"] for row in result["sessions"]]


async def test_without_params_the_first_fifty_come_newest_activity_first(connect, alice):
    """Tests that a v1 call gets the 50 most recently active sessions and a next_cursor."""
    newest_first = await store_sessions(alice, 60)
    result = await (await connect(alice)).call("session.list")
    assert ids(result) == newest_first[:50]
    assert result["next_cursor"]


async def test_pages_walk_the_whole_history_once(connect, alice):
    """Tests that following next_cursor lists every session exactly once, in order, and the
    last page's next_cursor is null."""
    newest_first = await store_sessions(alice, 25)
    rpc = await connect(alice)
    seen, params = [], {"limit": 10}
    while True:
        result = await rpc.call("session.list", params)
        seen += ids(result)
        if result["next_cursor"] is None:
            break
        params = {"limit": 10, "cursor": result["next_cursor"]}
    assert seen == newest_first


async def test_a_session_created_after_page_one_does_not_shift_page_two(connect, alice):
    """Tests that the cursor is stable under inserts: page 2 is the same rows whether or
    not a session was created in between."""
    newest_first = await store_sessions(alice, 6)
    rpc = await connect(alice)
    first = await rpc.call("session.list", {"limit": 3})
    await rpc.call("session.create", {"title": "newer"})
    second = await rpc.call("session.list", {"limit": 3, "cursor": first["next_cursor"]})
    assert ids(first) == newest_first[:3]
    assert ids(second) == newest_first[3:]


async def test_status_filter_lists_only_that_status(connect, alice):
    """Tests that status=closed leaves out a live session and status=live lists it alone."""
    closed = await store_sessions(alice, 3)
    rpc = await connect(alice)
    live = (await rpc.call("session.create"))["session_id"]
    assert ids(await rpc.call("session.list", {"status": "closed"})) == closed
    assert ids(await rpc.call("session.list", {"status": "live"})) == [live]


async def test_query_matches_a_title_substring_ignoring_case(connect, alice):
    """Tests that query filters on a case-insensitive title substring."""
    await store_sessions(alice, 5)
    (match,) = await store_sessions(alice, 1, title="Quarterly REPORT {}", start=100)
    result = await (await connect(alice)).call("session.list", {"query": "report"})
    assert ids(result) == [match]


async def test_another_users_sessions_never_show_on_any_page(connect, alice, bob):
    """Tests that pages and filters are scoped to the caller."""
    await store_sessions(bob, 5, title="secret {}")
    rpc = await connect(alice)
    assert ids(await rpc.call("session.list", {"query": "secret"})) == []
    assert ids(await rpc.call("session.list", {"status": "closed"})) == []


@pytest.mark.parametrize("limit", [0, 201, -1, "10", True])
async def test_a_limit_out_of_bounds_is_invalid_params(connect, alice, limit):
    """Tests that limit must be an integer from 1 to 200."""
    error = await (await connect(alice)).error("session.list", {"limit": limit})
    assert error["code"] == -32602 and "limit" in error["message"]


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64!",
        "bm9waXBl",
        Cursor.after({"last_activity": "2026-01-01", "session_id": "a"}).encode(),
        "x" * 500,
        5,
    ],
)
async def test_a_malformed_cursor_is_invalid_params(connect, alice, cursor):
    """Tests that a cursor the server did not issue is -32602 naming cursor."""
    error = await (await connect(alice)).error("session.list", {"cursor": cursor})
    assert error["code"] == -32602 and "cursor" in error["message"]


async def test_an_unknown_status_is_invalid_params(connect, alice):
    """Tests that status must be one of the session states."""
    error = await (await connect(alice)).error("session.list", {"status": "zombie"})
    assert error["code"] == -32602 and "status" in error["message"]


async def test_a_long_history_still_answers_a_small_first_page(connect, alice):
    """Tests that with 2 000 stored sessions session.list answers (it used to exceed the
    response size) with one default page."""
    await store_sessions(alice, 2000, title="a fairly long session title number {}")
    rpc = await connect(alice)
    response = await rpc.request("session.list")
    assert "result" in response, response
    assert len(response["result"]["sessions"]) == 50
    assert len(json.dumps(response)) < 20_000
