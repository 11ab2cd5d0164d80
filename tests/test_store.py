"""The write-behind session store: ordered writes, changes to a waiting row merged in."""

import asyncio

import pytest

from gateway_app.models import GatewaySession, Message
from gateway_app.sessions.store import SessionStore

pytestmark = pytest.mark.django_db(transaction=True)


async def test_changes_to_a_waiting_row_merge_into_one_write(alice):
    """Tests that a create followed by updates, all still queued, is one write whose row
    ends with the last value of every field."""
    store = SessionStore()
    store.create("s1", alice.pk, "title", "worker", "channel")
    store.update("s1", attached=0, status="detached")
    store.update("s1", title="renamed")
    assert len(store._queue) == 1
    await store.flush()
    row = await GatewaySession.objects.aget(pk="s1")
    assert (row.title, row.status, row.attached, row.host_worker) == (
        "renamed",
        "detached",
        0,
        "worker",
    )


async def test_rows_merge_only_while_queued(alice):
    """Tests that an update after the queue was written is a write of its own."""
    store = SessionStore()
    store.create("s1", alice.pk, "t", "w", "c")
    await store.flush()
    store.update("s1", status="detached")
    assert len(store._queue) == 1
    await store.flush()
    assert (await GatewaySession.objects.aget(pk="s1")).status == "detached"


async def test_messages_keep_their_order_around_merged_rows(alice):
    """Tests that transcript rows are written in order, after the session row they need."""
    store = SessionStore()
    store.create("s1", alice.pk, "t", "w", "c")
    store.add_message("s1", "user", "first")
    store.update("s1", status="running")
    store.add_message("s1", "assistant", "second")
    await store.flush()
    contents = [m.content async for m in Message.objects.filter(session_id="s1").order_by("id")]
    assert contents == ["first", "second"]
    assert (await GatewaySession.objects.aget(pk="s1")).status == "running"


async def test_a_failed_hop_to_the_database_keeps_the_batch_and_retries(alice, monkeypatch):
    """Tests that when the hop to the database thread itself fails, the drain task survives,
    keeps the writes in order and applies them on the next try (flush returns)."""
    store = SessionStore()
    real_apply = SessionStore._apply
    failures = [RuntimeError("CurrentThreadExecutor already quit or is broken")]

    async def flaky_apply(batch):
        if failures:
            raise failures.pop()
        await real_apply(batch)

    monkeypatch.setattr(store, "_apply", flaky_apply)
    store.start()
    store.create("s1", alice.pk, "t", "w", "c")
    store.add_message("s1", "user", "kept")
    await asyncio.wait_for(store.flush(), 5)
    await store.stop()
    assert await Message.objects.filter(session_id="s1", content="kept").aexists()
