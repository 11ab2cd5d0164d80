"""Cold starts read the newest HISTORY_LIMIT transcript rows and a count, never it all."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext

from gateway_app.models import GatewaySession, Message
from gateway_app.sessions.host import current_host

pytestmark = pytest.mark.django_db(transaction=True)


async def stored_session(user, count: int) -> str:
    row = await GatewaySession.objects.acreate(user=user, title="long", status="closed")
    await Message.objects.abulk_create(
        (Message(session=row, role="user", content=f"m{i}") for i in range(count)),
        batch_size=2000,
    )
    return row.id


@contextlib.asynccontextmanager
async def message_queries() -> AsyncIterator[list[str]]:
    """The SQL of the queries on the message table inside the block. Captured in the one
    thread the store's ORM calls run in (database connections are per thread)."""
    context = CaptureQueriesContext(connection)
    queries: list[str] = []

    def stop() -> None:
        context.__exit__(None, None, None)
        table = Message._meta.db_table
        queries.extend(q["sql"] for q in context.captured_queries if f'FROM "{table}"' in q["sql"])

    await sync_to_async(context.__enter__)()
    try:
        yield queries
    finally:
        await sync_to_async(stop)()


async def test_a_cold_start_of_a_long_session_reads_only_the_newest_rows(connect, alice, limits):
    """Tests that cold-starting a 10 000-message session selects messages only with a LIMIT
    of HISTORY_LIMIT (plus one COUNT), and still counts every older message as omitted."""
    limits(HISTORY_LIMIT=20)
    sid = await stored_session(alice, 10_000)
    rpc = await connect(alice)
    async with message_queries() as reads:
        resumed = await rpc.call("session.resume", {"session_id": sid})
    selects = [sql for sql in reads if "COUNT(" not in sql]
    assert selects and all("LIMIT 20" in sql for sql in selects), reads
    assert len([sql for sql in reads if "COUNT(" in sql]) == 1
    assert resumed["omitted"] == 10_000 - len(resumed["messages"])
    assert resumed["messages"][-1]["content"] == "m9999"
    session = current_host().sessions[sid]
    assert len(session.history) == 20 and session.message_count == 10_000


async def test_a_cold_start_keeps_the_history_within_history_bytes(connect, alice, limits):
    """Tests that the history a cold start keeps in memory is trimmed to HISTORY_BYTES too,
    oldest first, while the count stays that of the whole transcript."""
    limits(HISTORY_LIMIT=200, HISTORY_BYTES=1100)
    row = await GatewaySession.objects.acreate(user=alice, title="", status="closed")
    await Message.objects.abulk_create(
        Message(session=row, role="user", content=f"{i:03d}" + "x" * 297) for i in range(10)
    )
    rpc = await connect(alice)
    resumed = await rpc.call("session.resume", {"session_id": row.id})
    session = current_host().sessions[row.id]
    assert [m["content"][:3] for m in session.history] == ["007", "008", "009"]
    assert session.message_count == 10 and resumed["omitted"] == 7


async def test_closing_a_stored_session_reads_no_transcript(connect, alice):
    """Tests that session.close of a stored (not live) session does not read its messages."""
    sid = await stored_session(alice, 50)
    rpc = await connect(alice)
    async with message_queries() as reads:
        await rpc.call("session.close", {"session_id": sid})
    assert reads == []
