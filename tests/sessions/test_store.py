"""The write-behind session store: ordered writes, changes to a waiting row merged in."""

import asyncio
import datetime as dt

import pytest
from django.db import connections
from hypothesis import given
from hypothesis import settings as settings_hypothesis
from hypothesis import strategies as st

from gateway_app.models import GatewaySession, Message
from gateway_app.sessions import store as store_module
from gateway_app.sessions.store import SessionStore, _converter

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


async def test_text_with_lone_surrogates_is_stored_with_replacement_characters(alice):
    """Tests that agent text UTF-8 cannot carry still lands, lone surrogates as U+FFFD and
    valid pairs joined, rather than failing its whole batch."""
    store = SessionStore()
    store.create("s1", alice.pk, "t\ud800", "w", "c")
    store.add_message("s1", "assistant", "a\udfffb \ud83d\ude00")
    await store.flush()
    assert (await GatewaySession.objects.aget(pk="s1")).title == "t\ufffd"
    message = await Message.objects.aget(session_id="s1")
    assert message.content == "a\ufffdb \U0001f600"


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


class HeldWindow:
    """Replaces the store's batch window: records each wait and holds it until released."""

    def __init__(self):
        self.waits: list[float] = []
        self.entered = asyncio.Event()
        self.released = asyncio.Event()

    async def __call__(self, event, seconds):
        self.waits.append(seconds)
        self.entered.set()
        release = asyncio.ensure_future(self.released.wait())
        urgent = asyncio.ensure_future(event.wait())
        await asyncio.wait({release, urgent}, return_when=asyncio.FIRST_COMPLETED)
        release.cancel()
        urgent.cancel()


@pytest.fixture
def window(monkeypatch):
    held = HeldWindow()
    monkeypatch.setattr(store_module, "wait_at_most", held)
    return held


def applied(store):
    """An event set after the next batch the store applies."""
    done = asyncio.Event()
    real_apply = store._apply

    async def apply_then_signal(batch):
        await real_apply(batch)
        if batch:
            done.set()

    store._apply = apply_then_signal
    return done


async def test_writes_wait_for_the_batch_window_then_land_on_their_own(alice, settings, window):
    """Tests that queued writes are held for STORE_BATCH_MS, then written with no flush."""
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "STORE_BATCH_MS": 200}
    store = SessionStore()
    landed = applied(store)
    store.start()
    store.create("s1", alice.pk, "t", "w", "c")
    await asyncio.wait_for(window.entered.wait(), 5)
    assert window.waits == [0.2]
    assert not await GatewaySession.objects.filter(pk="s1").aexists()
    window.released.set()
    await asyncio.wait_for(landed.wait(), 5)
    assert await GatewaySession.objects.filter(pk="s1").aexists()
    await store.stop()


async def test_writes_after_a_flush_of_an_idle_store_are_still_batched(alice, settings, window):
    """Tests that flushing a store with nothing queued does not make the next write skip
    the batch window."""
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "STORE_BATCH_MS": 300}
    store = SessionStore()
    store.start()
    await store.flush()
    store.create("s1", alice.pk, "t", "w", "c")
    await asyncio.wait_for(window.entered.wait(), 5)
    assert window.waits == [0.3]
    assert not await GatewaySession.objects.filter(pk="s1").aexists()
    await store.flush()
    assert await GatewaySession.objects.filter(pk="s1").aexists()
    await store.stop()


async def test_flush_does_not_wait_for_the_batch_window(alice, settings):
    """Tests that a reader's flush() writes at once even with a long batch window."""
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "STORE_BATCH_MS": 60_000}
    store = SessionStore()
    store.start()
    store.create("s1", alice.pk, "t", "w", "c")
    await asyncio.wait_for(store.flush(), 5)
    assert await GatewaySession.objects.filter(pk="s1").aexists()
    await store.stop()


async def test_an_abandoned_store_writes_nothing_it_had_queued(alice, settings):
    """Tests that abandon() drops the queued writes and stops the writer, as a killed
    worker's store would."""
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "STORE_BATCH_MS": 60_000}
    store = SessionStore()
    store.start()
    store.create("s1", alice.pk, "t", "w", "c")
    await store.abandon()
    await store.flush()
    assert not await GatewaySession.objects.filter(pk="s1").aexists()


async def test_a_batch_of_new_sessions_and_messages_is_written_whole(alice):
    """Tests that many new rows in one batch (bulk inserts) all land, with their changes."""
    store = SessionStore()
    for index in range(20):
        store.create(f"s{index}", alice.pk, "t", "w", "c")
        store.add_message(f"s{index}", "user", f"m{index}")
        store.update(f"s{index}", attached=0, status="detached")
    await store.flush()
    assert await GatewaySession.objects.filter(status="detached").acount() == 20
    assert await Message.objects.acount() == 20


async def test_changed_rows_keep_every_field_type(alice):
    """Tests that rows changed in one batch (one executemany) store datetimes, nulls and
    numbers exactly as the ORM reads them back."""
    store = SessionStore()
    for sid in ("a", "b"):
        store.create(sid, alice.pk, "t", "w", "c")
    await store.flush()
    store.update("a", slash_pid=4242, title="ä title")
    store.finalize("b", "reaped", 17)
    await store.flush()
    a = await GatewaySession.objects.aget(pk="a")
    b = await GatewaySession.objects.aget(pk="b")
    assert (a.slash_pid, a.title) == (4242, "ä title")
    assert (b.status, b.close_reason, b.last_seq, b.slash_pid) == ("closed", "reaped", 17, None)
    assert b.closed_at is not None and b.closed_at.tzinfo is not None
    assert b.last_activity == b.closed_at


@settings_hypothesis(max_examples=300, deadline=None)
@given(data=st.data())
def test_column_converters_agree_with_get_db_prep_save(data):
    """Tests that the store's per-column converters give what ``get_db_prep_save`` gives,
    for every GatewaySession column and the kinds of values the store writes (and some it
    does not: those take the full chain)."""
    connection = connections["default"]
    field = data.draw(st.sampled_from(GatewaySession._meta.concrete_fields))
    values = {
        "DateTimeField": st.one_of(
            st.none(),
            st.datetimes(timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=-7))])),
        ),
        "CharField": st.one_of(st.none(), st.text(max_size=50), st.integers()),
        "ForeignKey": st.one_of(st.none(), st.integers(0, 2**31), st.booleans()),
    }.get(field.get_internal_type(), st.one_of(st.none(), st.integers(0, 2**40), st.booleans()))
    value = data.draw(values)
    assert _converter(field, connection)(value) == field.get_db_prep_save(value, connection)


async def test_each_batch_keeps_the_session_rows_message_count(alice):
    """Tests that transcript rows written in a batch raise their session row's message_count
    in the same batch, so the admin never counts a session's messages."""
    store = SessionStore()
    store.create("s1", alice.pk, "t", "w", "c")
    store.create("s2", alice.pk, "t", "w", "c")
    for content in ("a", "b", "c"):
        store.add_message("s1", "user", content)
    store.add_message("s2", "user", "d")
    await store.flush()
    store.add_message("s1", "assistant", "e")
    await store.flush()
    counts = {row.pk: row.message_count async for row in GatewaySession.objects.all()}
    assert counts == {"s1": 4, "s2": 1}


async def test_clearing_a_transcript_resets_its_message_count(alice):
    """Tests that clear_messages leaves the row's message_count at zero with the rows gone."""
    store = SessionStore()
    store.create("s1", alice.pk, "t", "w", "c")
    store.add_message("s1", "user", "a")
    await store.flush()
    store.clear_messages("s1")
    store.add_message("s1", "user", "after the clear")
    await store.flush()
    assert (await GatewaySession.objects.aget(pk="s1")).message_count == 1


async def test_messages_retried_one_by_one_still_count(alice):
    """Tests that when a batch fails and its writes are retried one by one, the transcript
    rows that land still raise their session's message_count."""
    store = SessionStore()
    store.create("s1", alice.pk, "t", "w", "c")
    await store.flush()

    def broken() -> None:
        raise RuntimeError("a bad write")

    store.add_message("s1", "user", "a")
    store.submit(broken)
    store.add_message("s1", "user", "b")
    await store.flush()
    assert (await GatewaySession.objects.aget(pk="s1")).message_count == 2
