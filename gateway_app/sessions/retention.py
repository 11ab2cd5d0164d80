"""
Stored-history retention: which stored sessions may go, and deleting them in bounded batches.

Only closed sessions are prunable (ended by close, reap, TTL or eviction): a live, running or
detached row may belong to a session a host still holds, and cleanup cannot tell from outside.
Two rules pick them: ``MAX_STORED_SESSIONS_PER_USER`` (closed sessions older than the user's
newest N go, checked after each ``session.create`` and by ``gateway_cleanup``) and
``SESSION_RETENTION_DAYS`` (closed sessions idle longer go, by ``gateway_cleanup``). Every
delete re-checks the row in the statement itself, so a session revived meanwhile is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from ..models import GatewaySession, Message, SessionStatus

logger = logging.getLogger(__name__)

#: Sessions examined, and at most deleted, per batch.
SESSION_BATCH = 500
#: Transcript rows deleted per transaction: a long transcript must not hold the database's
#: write lock (SQLite) for long beside a gateway writing to it.
MESSAGE_BATCH = 5000


@dataclass(slots=True)
class Pruned:
    """How many session rows and transcript rows went (or would go, in a dry run)."""

    sessions: int = 0
    messages: int = 0

    def add(self, other: Pruned) -> None:
        self.sessions += other.sessions
        self.messages += other.messages


def prunable() -> QuerySet[GatewaySession]:
    """Stored sessions that may be deleted: the closed ones."""
    return GatewaySession.objects.filter(status=SessionStatus.CLOSED)


def delete_sessions(
    ids: Sequence[str], condition: Q | None = None, *, message_batch: int = MESSAGE_BATCH
) -> Pruned:
    """
    Delete those of the sessions ``ids`` still prunable (and matching ``condition``), with
    their transcripts: the messages first, ``message_batch`` rows a transaction, then the
    rows that still qualify and have none left. Each statement re-checks the row's status, so
    a session revived between two of them keeps its row and what is left of its transcript.
    """
    pruned = Pruned()
    if not ids:
        return pruned
    eligible = prunable().filter(pk__in=list(ids))
    if condition is not None:
        eligible = eligible.filter(condition)
    while True:
        chunk = Message.objects.filter(session__in=eligible).order_by().values("pk")
        with transaction.atomic():
            deleted, _ = Message.objects.filter(pk__in=chunk[:message_batch]).delete()
        pruned.messages += deleted
        if deleted < message_batch:
            break
    rows = eligible.filter(~Exists(Message.objects.filter(session=OuterRef("pk"))))
    with transaction.atomic():
        # One conditional DELETE (QuerySet.delete() would select the rows first and delete
        # them by id, unconditionally, whatever happened to them in between).
        pruned.sessions = rows._raw_delete(rows.db)
    return pruned


def count_sessions(ids: Sequence[str], condition: Q | None = None) -> Pruned:
    """What ``delete_sessions`` would delete now (the dry run)."""
    eligible = prunable().filter(pk__in=list(ids))
    if condition is not None:
        eligible = eligible.filter(condition)
    return Pruned(eligible.count(), Message.objects.filter(session__in=eligible).count())


### The per-user quota ###


def over_quota(
    user_id: int, keep: int, limit: int = SESSION_BATCH, after: tuple | None = None
) -> list[tuple]:
    """
    The user's closed sessions older (by last activity) than their newest ``keep``, oldest
    first, as (last_activity, id) keys after the key ``after``, at most ``limit``: two reads
    of the user's index, however long the history.
    """
    newest = GatewaySession.objects.filter(user_id=user_id).order_by("-last_activity", "-id")
    boundary = newest.values_list("last_activity", "id")[keep - 1 : keep].first()
    if boundary is None:
        return []
    rows = prunable().filter(_before(boundary), user_id=user_id)
    if after is not None:
        rows = rows.filter(_after(after))
    keys = rows.order_by("last_activity", "id").values_list("last_activity", "id")
    return list(keys[:limit])


def prune_user(
    user_id: int, keep: int, *, limit: int = SESSION_BATCH, message_batch: int = MESSAGE_BATCH
) -> Pruned:
    """Delete one batch of the user's closed sessions beyond their newest ``keep``."""
    ids = [session_id for _, session_id in over_quota(user_id, keep, limit)]
    return delete_sessions(ids, message_batch=message_batch)


def _before(key: tuple) -> Q:
    """Rows older than the (last_activity, id) key in the listing's order."""
    stamp, session_id = key
    return Q(last_activity__lt=stamp) | Q(last_activity=stamp, id__lt=session_id)


def _after(key: tuple) -> Q:
    """Rows newer than the key: where a keyset walk, oldest first, goes on."""
    stamp, session_id = key
    return Q(last_activity__gt=stamp) | Q(last_activity=stamp, id__gt=session_id)


def users_over_quota(keep: int) -> list[int]:
    """Users with more than ``keep`` stored sessions (one grouped read of the table)."""
    rows = (
        GatewaySession.objects.order_by()
        .values("user_id")
        .annotate(stored=Count("id"))
        .filter(stored__gt=keep)
        .values_list("user_id", flat=True)
    )
    return list(rows)


### Retention by age ###


def expired(cutoff: datetime, after: tuple[datetime, str] | None, limit: int) -> list[tuple]:
    """The next ``limit`` closed sessions idle since before ``cutoff``, oldest first, as
    (last_activity, id) keys, after the key ``after`` (a keyset walk: rows kept stay behind)."""
    rows = prunable().filter(last_activity__lt=cutoff)
    if after is not None:
        rows = rows.filter(_after(after))
    return list(rows.order_by("last_activity", "id").values_list("last_activity", "id")[:limit])


@dataclass(slots=True)
class Report:
    """What one cleanup did (or would do): by age, and by the per-user quota (``users``:
    how many users it pruned)."""

    expired: Pruned
    over_quota: Pruned
    users: int = 0


def cleanup(
    days: float,
    keep: int,
    *,
    dry_run: bool = False,
    session_batch: int = SESSION_BATCH,
    message_batch: int = MESSAGE_BATCH,
    now: datetime | None = None,
) -> Report:
    """
    Apply retention (closed sessions idle more than ``days``; 0 keeps them) and then the
    per-user quota (``keep``; 0 is none) to the whole table, a batch at a time.
    """
    report = Report(Pruned(), Pruned())
    # What a dry run counts for the quota leaves out what retention would have deleted.
    survivors: Q | None = None
    if days > 0:
        cutoff = (now or timezone.now()) - timedelta(days=days)
        condition = Q(last_activity__lt=cutoff)
        survivors = Q(last_activity__gte=cutoff) if dry_run else None
        after = None
        while keys := expired(cutoff, after, session_batch):
            ids = [session_id for _, session_id in keys]
            if dry_run:
                report.expired.add(count_sessions(ids, condition))
            else:
                report.expired.add(delete_sessions(ids, condition, message_batch=message_batch))
            after = keys[-1]
    if keep > 0:
        for user_id in users_over_quota(keep):
            pruned = _enforce_quota(user_id, keep, dry_run, survivors, session_batch, message_batch)
            report.users += bool(pruned.sessions)
            report.over_quota.add(pruned)
    return report


def _enforce_quota(
    user_id: int,
    keep: int,
    dry_run: bool,
    survivors: Q | None,
    session_batch: int,
    message_batch: int,
) -> Pruned:
    """The whole of one user's excess, a batch at a time (a keyset walk, oldest first)."""
    total = Pruned()
    after = None
    while keys := over_quota(user_id, keep, session_batch, after):
        ids = [session_id for _, session_id in keys]
        if dry_run:
            total.add(count_sessions(ids, survivors))
        else:
            total.add(delete_sessions(ids, message_batch=message_batch))
        after = keys[-1]
    return total
