"""Stored-history retention: the per-user quota and retention by age, in bounded batches."""

from __future__ import annotations

import datetime as dt

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext

from gateway_app.models import GatewaySession, Message, SessionStatus
from gateway_app.sessions import retention
from gateway_app.sessions.coldstart import ColdStarter
from gateway_app.sessions.host import current_host

NOW = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)


def stored(user, age_days: float, status=SessionStatus.CLOSED, messages: int = 1) -> str:
    """A stored session of ``user`` last active ``age_days`` before NOW, with a transcript."""
    when = NOW - dt.timedelta(days=age_days)
    row = GatewaySession.objects.create(
        user=user, status=status, created_at=when, last_activity=when
    )
    Message.objects.bulk_create(
        Message(session=row, role="user", content=f"m{i}") for i in range(messages)
    )
    return row.id


def left(*ids: str) -> set[str]:
    return set(GatewaySession.objects.filter(pk__in=ids).values_list("id", flat=True))


### The per-user quota ###


@pytest.mark.django_db
def test_closed_sessions_beyond_the_users_newest_go_oldest_first(alice):
    """Tests that prune_user deletes the user's closed sessions older than their newest
    ``keep``, with their messages, and keeps the newest ``keep``."""
    ids = [stored(alice, age, messages=2) for age in (5, 4, 3, 2, 1)]
    pruned = retention.prune_user(alice.pk, keep=3)
    assert (pruned.sessions, pruned.messages) == (2, 4)
    assert left(*ids) == set(ids[2:])
    assert not Message.objects.filter(session_id__in=ids[:2]).exists()


@pytest.mark.django_db
def test_sessions_not_closed_are_never_pruned(alice):
    """Tests that live, running and detached sessions beyond the quota stay, and count
    towards the newest ``keep`` all the same."""
    old_open = [stored(alice, 10 + i, status=s) for i, s in enumerate(("live", "running"))]
    detached = stored(alice, 9, status=SessionStatus.DETACHED)
    closed_old = stored(alice, 8)
    newest = stored(alice, 1)
    retention.prune_user(alice.pk, keep=1)
    assert left(*old_open, detached, closed_old, newest) == {*old_open, detached, newest}


@pytest.mark.django_db
def test_the_quota_is_per_user(alice, bob):
    """Tests that one user's sessions do not count towards another's quota."""
    mine = [stored(alice, age) for age in (3, 2)]
    theirs = [stored(bob, age) for age in (5, 4)]
    retention.prune_user(alice.pk, keep=2)
    assert left(*mine, *theirs) == {*mine, *theirs}


@pytest.mark.django_db
def test_a_long_transcript_is_deleted_in_bounded_transactions(alice):
    """Tests that a transcript longer than message_batch goes in several DELETEs of at most
    message_batch rows, and the session row after them."""
    old = stored(alice, 2, messages=7)
    stored(alice, 1)
    with CaptureQueriesContext(connection) as queries:
        pruned = retention.prune_user(alice.pk, keep=1, message_batch=3)
    deletes = [
        q["sql"] for q in queries if q["sql"].startswith('DELETE FROM "gateway_app_message"')
    ]
    assert (pruned.sessions, pruned.messages) == (1, 7)
    assert len(deletes) == 3
    assert not left(old)


@pytest.mark.django_db
def test_a_session_revived_while_its_transcript_goes_keeps_its_row(alice):
    """Tests that a row no longer closed when its turn comes (a cold start revived it) is
    kept, with the messages not yet deleted."""
    old = stored(alice, 2, messages=4)
    GatewaySession.objects.filter(pk=old).update(status=SessionStatus.DETACHED)
    pruned = retention.delete_sessions([old])
    assert (pruned.sessions, pruned.messages) == (0, 0)
    assert left(old) == {old}
    assert Message.objects.filter(session_id=old).count() == 4


### Retention by age, and the whole table ###


@pytest.mark.django_db
def test_cleanup_deletes_closed_sessions_idle_past_the_retention(alice, bob):
    """Tests that cleanup(days) deletes every user's closed sessions idle longer than
    ``days`` and keeps newer ones and open ones however old."""
    old = [stored(alice, 40, messages=3), stored(bob, 31)]
    recent = stored(alice, 29)
    open_old = stored(bob, 90, status=SessionStatus.DETACHED)
    report = retention.cleanup(30, 0, now=NOW, session_batch=1)
    assert (report.expired.sessions, report.expired.messages) == (2, 4)
    assert left(*old, recent, open_old) == {recent, open_old}


@pytest.mark.django_db
def test_cleanup_with_no_retention_keeps_old_sessions(alice):
    """Tests that days=0 (the default) deletes nothing by age."""
    old = stored(alice, 4000)
    report = retention.cleanup(0, 0, now=NOW)
    assert report.expired == retention.Pruned()
    assert left(old) == {old}


@pytest.mark.django_db
def test_cleanup_enforces_the_quota_for_every_user(alice, bob):
    """Tests that cleanup(keep) prunes every user beyond their newest ``keep``, in batches."""
    mine = [stored(alice, age) for age in (6, 5, 4, 3, 2, 1)]
    theirs = [stored(bob, age) for age in (3, 2, 1)]
    report = retention.cleanup(0, 2, now=NOW, session_batch=2)
    assert (report.users, report.over_quota.sessions) == (2, 5)
    assert left(*mine, *theirs) == {*mine[-2:], *theirs[-2:]}


@pytest.mark.django_db
def test_cleanup_skips_sessions_kept_open_inside_a_batch(alice):
    """Tests that an open session among the oldest neither stops the walk nor goes."""
    open_old = stored(alice, 50, status=SessionStatus.LIVE)
    closed = [stored(alice, age) for age in (49, 48, 47)]
    report = retention.cleanup(30, 0, now=NOW, session_batch=1)
    assert report.expired.sessions == 3
    assert left(open_old, *closed) == {open_old}


@pytest.mark.django_db
def test_a_dry_run_counts_what_would_go_and_deletes_nothing(alice):
    """Tests that dry_run reports the same figures as the real run, and changes nothing."""
    ids = [stored(alice, 40, messages=2), stored(alice, 35), stored(alice, 3), stored(alice, 2)]
    ids += [stored(alice, 1)]
    dry = retention.cleanup(30, 2, dry_run=True, now=NOW, session_batch=1)
    assert left(*ids) == set(ids)
    real = retention.cleanup(30, 2, now=NOW, session_batch=1)
    assert (dry.expired, dry.over_quota) == (real.expired, real.over_quota)
    assert (real.expired.sessions, real.expired.messages, real.over_quota.sessions) == (2, 3, 1)


@pytest.mark.django_db
def test_cleanup_run_again_deletes_nothing_more(alice):
    """Tests that cleanup is idempotent: a second run finds nothing left to delete."""
    for age in (40, 35, 3, 2, 1):
        stored(alice, age)
    retention.cleanup(30, 2, now=NOW)
    again = retention.cleanup(30, 2, now=NOW)
    assert (again.expired, again.over_quota) == (retention.Pruned(), retention.Pruned())


### Beside a running gateway ###


@pytest.mark.django_db(transaction=True)
async def test_session_create_prunes_the_users_oldest_closed_sessions(connect, alice, limits):
    """Tests that session.create beyond MAX_STORED_SESSIONS_PER_USER deletes the user's
    oldest closed sessions, and that session.list no longer shows them."""
    limits(MAX_STORED_SESSIONS_PER_USER=3)
    old = [await sync_to_async(stored)(alice, age) for age in (3, 2, 1)]
    rpc = await connect(alice)
    assert len((await rpc.call("session.list"))["sessions"]) == 3  # the index holds them
    created = (await rpc.call("session.create"))["session_id"]
    await current_host().store.flush()
    assert await sync_to_async(left)(*old, created) == {*old[1:], created}
    listed = [row["session_id"] for row in (await rpc.call("session.list"))["sessions"]]
    assert sorted(listed) == sorted([*old[1:], created])


@pytest.mark.django_db(transaction=True)
async def test_no_quota_keeps_every_stored_session(connect, alice, limits):
    """Tests that MAX_STORED_SESSIONS_PER_USER=0 prunes nothing."""
    limits(MAX_STORED_SESSIONS_PER_USER=0)
    old = [await sync_to_async(stored)(alice, age) for age in (3, 2, 1)]
    rpc = await connect(alice)
    await rpc.call("session.create")
    await current_host().store.flush()
    assert await sync_to_async(left)(*old) == set(old)


@pytest.mark.django_db(transaction=True)
async def test_a_resume_of_a_session_deleted_while_it_cold_starts_is_not_found(
    connect, alice, monkeypatch
):
    """Tests that a session whose row is deleted between the cold start's read and its
    revival (gateway_cleanup beside the gateway) answers 4001 and is not left live."""
    sid = await sync_to_async(stored)(alice, 40, messages=2)
    claim = ColdStarter.claim

    async def claim_then_delete(self, session_id, user_id):
        await claim(self, session_id, user_id)
        await sync_to_async(retention.delete_sessions)([session_id])

    monkeypatch.setattr(ColdStarter, "claim", claim_then_delete)
    rpc = await connect(alice)
    error = await rpc.error("session.resume", {"session_id": sid})
    assert error["code"] == 4001
    assert sid not in current_host().sessions
    assert not await sync_to_async(left)(sid)
