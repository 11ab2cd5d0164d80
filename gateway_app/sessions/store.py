"""
Database persistence for sessions and transcripts, kept off the hot path.

Writes go through one ordered write-behind queue drained by a single task, a batch per
thread hop, so a handler never waits for the database and writes never reorder. The drain
gathers writes for ``STORE_BATCH_MS`` before a batch; changes to a session row still waiting
are merged into the waiting write (a create followed by a detach is one INSERT), and the new
rows of a batch go in with one ``INSERT`` per table. Reads that must see earlier writes
call ``flush()`` first, which cuts the wait short. All ORM work runs in
``database_sync_to_async``, which closes stale connections itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from channels.db import database_sync_to_async
from django.db import connections, router, transaction
from django.db.models import F
from django.utils import timezone

from ..conf import setting
from ..metrics import families
from ..models import GatewaySession, Message, SessionStatus
from .listing import Cursor, read_page
from .retention import prune_user

logger = logging.getLogger(__name__)

Write = Callable[[], None]


async def wait_at_most(event: asyncio.Event, seconds: float) -> None:
    """Wait until ``event`` is set or ``seconds`` pass: the batch window (tests replace it)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)


def storable(text: str) -> str:
    """``text`` with lone surrogates (an agent may produce them) as U+FFFD: UTF-8 columns
    refuse them, and the whole row would be lost."""
    if text.isascii():
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


@dataclass(slots=True)
class RowWrite:
    """A queued create or update of one ``GatewaySession`` row; later changes merge in."""

    session_id: str
    fields: dict[str, Any]
    create: bool = False

    def __call__(self) -> None:
        if self.create:
            GatewaySession.objects.create(id=self.session_id, **self.fields)
        else:
            GatewaySession.objects.filter(pk=self.session_id).update(**self.fields)


@dataclass(slots=True)
class MessageWrite:
    """A queued transcript row, and the in-memory history entry that gets its id."""

    row: Message
    entry: dict[str, Any] | None = None

    def __call__(self) -> None:
        _insert_messages([self.row])

    def written(self) -> None:
        """On the event loop, after the batch: the entry learns the row's id."""
        if self.entry is not None and self.row.pk is not None:
            self.entry["id"] = self.row.pk


@dataclass(slots=True)
class PruneWrite:
    """A queued per-user quota check (``retention.prune_user``), after the user's new row;
    ``pruned`` is called from the database thread with the user's id when rows went."""

    user_id: int
    keep: int
    pruned: Callable[[int], None]

    def __call__(self) -> None:
        if prune_user(self.user_id, self.keep, limit=PRUNE_PER_CREATE).sessions:
            self.pruned(self.user_id)


#: Sessions one create may prune: a few more than it adds, so a backlog (the quota lowered)
#: shrinks with use while each write batch stays small; gateway_cleanup takes the rest.
PRUNE_PER_CREATE = 4


@dataclass(slots=True)
class StoredSession:
    id: str
    user_id: int
    title: str
    created_at: datetime
    last_seq: int
    status: str
    #: The newest messages (``HISTORY_LIMIT`` at most), oldest first; empty unless asked.
    messages: list[dict[str, Any]]
    #: Messages in the whole transcript (0 unless the messages were asked for).
    message_count: int = 0


@dataclass(slots=True)
class HistoryPage:
    """A page of ``session.history``: messages oldest first, and whether older ones exist."""

    messages: list[dict[str, Any]]
    has_more: bool


class SessionStore:
    """Ordered write-behind persistence plus the few reads the host needs."""

    def __init__(self, *, gather: bool = True) -> None:
        #: Whether to wait ``STORE_BATCH_MS`` for more writes. Off beside other workers:
        #: they read these rows and cannot flush this queue.
        self.gather = gather
        self._queue: list[Write] = []
        #: The row writes in ``_queue``, by session, while they can still take changes.
        self._rows: dict[str, RowWrite] = {}
        #: Users with a quota check in ``_queue``: one per user and batch is enough.
        self._prunes: set[int] = set()
        self._wakeup = asyncio.Event()
        #: Set by ``flush()``: write now, without waiting for more writes to batch.
        self._urgent = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drain_forever())

    async def stop(self) -> None:
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def abandon(self) -> None:
        """Stop writing and drop what is queued, as a killed worker would (crash tests)."""
        self._queue.clear()
        self._idle.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def submit(self, write: Write) -> None:
        """Queue a sync ORM write; it runs after every write queued before it."""
        self._queue.append(write)
        self._idle.clear()
        self._wakeup.set()

    async def flush(self) -> None:
        """Wait until every queued write has been applied."""
        if self._task is None:
            batch = self._take()
            await self._apply(batch)
            _written(batch)
            return
        if self._idle.is_set():
            return  # nothing queued: and later writes still wait to be batched
        self._urgent.set()
        await self._idle.wait()

    def _take(self) -> list[Write]:
        batch, self._queue = self._queue, []
        self._rows = {}
        self._prunes = set()
        return batch

    async def _drain_forever(self) -> None:
        backoff = 0.1
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            # Every batch, not only the first after a quiet spell, waits for more writes:
            # under steady load a batch then holds a whole window's creates and the updates
            # that merged into them, instead of whatever arrived while the last one ran.
            await self._gather()
            batch = self._take()
            started = time.perf_counter()
            try:
                await self._apply(batch)
                _written(batch)
            except Exception:
                families.STORE_RETRIES.inc()
                # Not the writes (_run_batch handles those): the hop to the database
                # thread failed. Keep the batch, in order, and try again.
                logger.exception("session store could not write; retrying in %.1fs", backoff)
                self._queue[:0] = batch
                self._rows = {}
                self._wakeup.set()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if batch:
                families.STORE_BATCH_SECONDS.observe(time.perf_counter() - started)
            backoff = 0.1
            if self._queue:
                self._wakeup.set()
            else:
                self._urgent.clear()
                self._idle.set()

    async def _gather(self) -> None:
        """Let writes accumulate for ``STORE_BATCH_MS``, unless someone waits on them."""
        delay = setting("STORE_BATCH_MS") / 1000 if self.gather else 0.0
        if delay > 0 and not self._urgent.is_set():
            await wait_at_most(self._urgent, delay)

    @staticmethod
    async def _apply(batch: list[Write]) -> None:
        if batch:
            await database_sync_to_async(_run_batch)(batch)

    ### Writes (queued) ###

    def create(
        self,
        session_id: str,
        user_id: int,
        title: str,
        host: str,
        channel: str,
        created_at: datetime | None = None,
    ) -> None:
        now = created_at or timezone.now()
        self._write_row(
            session_id,
            {
                "user_id": user_id,
                "title": storable(title),
                "status": SessionStatus.LIVE,
                "attached": 1,
                "host_worker": host,
                "host_channel": channel,
                "created_at": now,
                "last_activity": now,
            },
            create=True,
        )

    def update(self, session_id: str, **fields: Any) -> None:
        if "last_activity" not in fields:
            fields["last_activity"] = timezone.now()
        if isinstance(fields.get("title"), str):
            fields["title"] = storable(fields["title"])
        self._write_row(session_id, fields)

    def _write_row(self, session_id: str, fields: dict[str, Any], *, create: bool = False) -> None:
        queued = self._rows.get(session_id)
        if queued is not None and not create:
            queued.fields.update(fields)
            return
        write = RowWrite(session_id, fields, create)
        self._rows[session_id] = write
        self.submit(write)

    def add_message(
        self,
        session_id: str,
        role: str,
        content: str,
        *,
        turn_id: str = "",
        data: dict[str, Any] | None = None,
        interrupted: bool = False,
        entry: dict[str, Any] | None = None,
    ) -> None:
        """Queue a transcript row; ``entry`` (its in-memory history entry) gets its id."""
        row = Message(
            session_id=session_id,
            role=role,
            content=storable(content),
            turn_id=turn_id,
            data=data or {},
            interrupted=interrupted,
        )
        self.submit(MessageWrite(row, entry))

    def detach_hosted_by(self, channels: list[str]) -> None:
        """Mark every unfinished row hosted on these (stopped) host channels detached."""
        self.submit(
            lambda: (
                GatewaySession.objects.filter(host_channel__in=channels)
                .exclude(status=SessionStatus.CLOSED)
                .update(status=SessionStatus.DETACHED, attached=0)
            )
        )

    def prune(self, user_id: int, keep: int, pruned: Callable[[int], None]) -> None:
        """Queue the deletion of the user's closed sessions beyond their newest ``keep``
        (``MAX_STORED_SESSIONS_PER_USER``), after the writes queued before it."""
        if user_id not in self._prunes:
            self._prunes.add(user_id)
            self.submit(PruneWrite(user_id, keep, pruned))

    def clear_messages(self, session_id: str) -> None:
        def clear() -> None:
            Message.objects.filter(session_id=session_id).delete()
            GatewaySession.objects.filter(pk=session_id).update(message_count=0)

        self.submit(clear)

    def finalize(self, session_id: str, reason: str, last_seq: int) -> None:
        self.update(session_id, **closed_fields(reason, last_seq))

    ### Reads ###

    async def load(
        self, session_id: str, user_id: int, *, messages: int = 0
    ) -> StoredSession | None:
        """The stored session, if it exists and belongs to the user, with its newest
        ``messages`` transcript messages and their count when asked (a cold start)."""
        await self.flush()
        return await database_sync_to_async(_load)(session_id, user_id, messages)

    async def history(
        self, session_id: str, user_id: int, before: int | None, limit: int
    ) -> HistoryPage | None:
        """The ``limit`` messages before the message ``before`` (the newest without it),
        oldest first; None when the session is not the user's. Flushed first, so a live
        session hosted here shows every message it has."""
        await self.flush()
        return await database_sync_to_async(_history)(session_id, user_id, before, limit)

    async def list_page(
        self,
        user_id: int,
        limit: int,
        cursor: Cursor | None = None,
        status: str | None = None,
        query: str = "",
    ) -> tuple[list[dict[str, Any]], bool]:
        """A page of the user's ``session.list`` rows (see ``listing``) and whether more follow."""
        await self.flush()
        return await database_sync_to_async(read_page)(user_id, limit, cursor, status, query)

    async def hosted_by(self, session_ids: list[str], channel: str) -> set[str]:
        """Those of the sessions whose rows are open and still name ``channel`` their host."""
        await self.flush()
        return await database_sync_to_async(_hosted_by)(session_ids, channel)

    async def claimed_hosts(self) -> list[str]:
        """Host channels that unfinished rows say are live, attached or running them."""
        await self.flush()
        return await database_sync_to_async(_claimed_hosts)()


def closed_fields(reason: str, last_seq: Any) -> dict[str, Any]:
    """What a finalized session row says: the same whichever process finalizes it."""
    now = timezone.now()
    return {
        "status": SessionStatus.CLOSED,
        "close_reason": reason,
        "attached": 0,
        "slash_pid": None,
        "last_seq": last_seq,
        "closed_at": now,
        "last_activity": now,
    }


def finalize_orphan_sync(session_id: str, reason: str) -> None:
    """
    Finalize the row of a session no live host holds, from sync code with no host of its
    own (the admin): seq moves past any the dead host may have issued.
    """
    fields = closed_fields(reason, F("last_seq") + 1)
    GatewaySession.objects.filter(pk=session_id).update(**fields)


def _run_batch(batch: list[Write]) -> None:
    try:
        with transaction.atomic():
            _write_grouped(batch)
    except Exception:
        # One bad write must not lose the batch: retry each on its own.
        logger.exception("session store batch failed; retrying writes one by one")
        for write in batch:
            try:
                write()
            except Exception:
                logger.exception("session store write failed")


def _write_grouped(batch: list[Write]) -> None:
    """
    The batch, grouped: new session rows first in one INSERT and changed rows in one
    ``executemany`` per set of fields (a row appears once: its changes were merged, and no
    other write depends on a session row's fields), then the rest in order, each run of
    transcript rows as one INSERT (after the sessions they belong to) with their count.
    """
    creates: list[RowWrite] = []
    updates: dict[tuple[str, ...], list[RowWrite]] = {}
    rest: list[Write] = []
    for write in batch:
        if isinstance(write, RowWrite):
            if write.create:
                creates.append(write)
            else:
                updates.setdefault(tuple(sorted(write.fields)), []).append(write)
        else:
            rest.append(write)
    if creates:
        _insert_rows(creates)
    for names, writes in updates.items():
        _update_rows(names, writes)
    messages: list[Message] = []
    for write in rest:
        if isinstance(write, MessageWrite):
            messages.append(write.row)
            continue
        if messages:
            _insert_messages(messages)
            messages = []
        write()
    if messages:
        _insert_messages(messages)


def _insert_messages(rows: list[Message]) -> None:
    """Transcript rows in one INSERT where the backend gives their ids back (SQLite,
    PostgreSQL: each row's id is the cursor ``session.history`` pages from), and each
    session row's ``message_count`` raised by its share in one ``executemany``: the admin
    reads the count instead of counting."""
    connection = connections[router.db_for_write(Message)]
    if connection.features.can_return_rows_from_bulk_insert:
        Message.objects.bulk_create(rows)
    else:
        for row in rows:
            row.save()
    added = Counter(row.session_id for row in rows)
    meta = GatewaySession._meta
    quote = connection.ops.quote_name
    column = quote(meta.get_field("message_count").column)
    sql = (
        f"UPDATE {quote(meta.db_table)} SET {column} = {column} + %s"
        f" WHERE {quote(meta.pk.column)} = %s"
    )
    with connection.cursor() as cursor:
        cursor.executemany(sql, [(count, session_id) for session_id, count in added.items()])


def _written(batch: list[Write]) -> None:
    for write in batch:
        if isinstance(write, MessageWrite):
            write.written()


def _insert_rows(writes: list[RowWrite]) -> None:
    """
    New session rows in one ``INSERT`` ``executemany``: ``bulk_create`` builds a model
    instance per row and costs several times more per row in churn. Columns a write does
    not name get the field's default.
    """
    meta = GatewaySession._meta
    fields = meta.concrete_fields
    connection = connections[router.db_for_write(GatewaySession)]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({placeholders})"
    converters = [_converter(field, connection) for field in fields]
    # Constant defaults are converted once per batch, not once per row.
    constants = {
        field.attname: convert(field.get_default())
        for field, convert in zip(fields, converters, strict=True)
        if not field.primary_key and not callable(field.default)
    }
    rows = []
    for write in writes:
        row = []
        for field, convert in zip(fields, converters, strict=True):
            if field.primary_key:
                row.append(convert(write.session_id))
            elif field.attname in write.fields:
                row.append(convert(write.fields[field.attname]))
            elif field.attname in constants:
                row.append(constants[field.attname])
            else:
                row.append(convert(field.get_default()))
        rows.append(row)
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def _update_rows(names: tuple[str, ...], writes: list[RowWrite]) -> None:
    """
    ``UPDATE ... WHERE id = %s`` for many rows in one ``executemany``: about ten times
    cheaper per row than ``QuerySet.update`` (and than ``bulk_update``'s CASE expressions)
    in churn.
    """
    meta = GatewaySession._meta
    fields = [meta.get_field(name) for name in names]
    connection = connections[router.db_for_write(GatewaySession)]
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in fields)
    sql = f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(meta.pk.column)} = %s"
    converters = [_converter(field, connection) for field in fields]
    rows = [
        [convert(w.fields[field.name]) for field, convert in zip(fields, converters, strict=True)]
        + [w.session_id]
        for w in writes
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def _converter(field: Any, connection: Any) -> Callable[[Any], Any]:
    """
    ``field.get_db_prep_save`` for one column. The values the store writes (text as
    ``str``, ``int``, aware datetimes, ``None``) come out of the full chain as they went in,
    or (datetimes) from the backend's adapter alone, so they skip the rest of it: the chain
    was most of a row's cost. Any other value takes the full chain.
    """

    if field.is_relation:
        # A foreign key saves as its target's column (the store passes the ``_id``).
        return _converter(field.target_field, connection)

    def full(value: Any) -> Any:
        return field.get_db_prep_save(value, connection)

    kind = field.get_internal_type()
    if kind == "DateTimeField":
        adapt = connection.ops.adapt_datetimefield_value
        # SQLite stores a UTC database's datetimes as naive UTC text: what the adapter makes
        # of ``timezone.now()`` (tzinfo UTC) without its conversions.
        utc_text = connection.vendor == "sqlite" and connection.timezone is UTC

        def datetime_value(value: Any) -> Any:
            if value is None:
                return None
            if type(value) is datetime:
                if utc_text and value.tzinfo is UTC:
                    return str(value.replace(tzinfo=None))
                if value.utcoffset() is not None:
                    return adapt(value)
            return full(value)

        return datetime_value
    if kind in ("CharField", "TextField"):
        return lambda value: value if value is None or type(value) is str else full(value)
    if kind in _INTEGER_FIELDS:
        return lambda value: value if value is None or type(value) is int else full(value)
    return full


_INTEGER_FIELDS = frozenset(
    {
        "AutoField",
        "BigAutoField",
        "SmallAutoField",
        "IntegerField",
        "BigIntegerField",
        "SmallIntegerField",
        "PositiveIntegerField",
        "PositiveBigIntegerField",
        "PositiveSmallIntegerField",
    }
)


def _load(session_id: str, user_id: int, newest: int) -> StoredSession | None:
    row = GatewaySession.objects.filter(pk=session_id, user_id=user_id).first()
    if row is None:
        return None
    stored = StoredSession(
        id=row.id,
        user_id=row.user_id,
        title=row.title,
        created_at=row.created_at,
        last_seq=row.last_seq,
        status=row.status,
        messages=[],
    )
    if newest > 0:
        # A keyset read of the newest rows and one COUNT: never the whole transcript.
        stored.messages = _newest_messages(row.id, None, newest)
        stored.messages.reverse()
        stored.message_count = Message.objects.filter(session_id=row.id).count()
    return stored


def _newest_messages(session_id: str, before: int | None, limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` messages of the session older than id ``before``, newest first."""
    rows = Message.objects.filter(session_id=session_id)
    if before is not None:
        rows = rows.filter(id__lt=before)
    fields = ("id", "role", "content", "data")
    return [
        {
            "id": pk,
            "role": role,
            "content": content,
            **({"truncated": True} if isinstance(data, dict) and data.get("truncated") else {}),
        }
        for pk, role, content, data in rows.order_by("-id").values_list(*fields)[:limit]
    ]


def _history(session_id: str, user_id: int, before: int | None, limit: int) -> HistoryPage | None:
    # The row is looked up by id and owner together: another user's session and an unknown
    # id take the same path and the same time.
    if not GatewaySession.objects.filter(pk=session_id, user_id=user_id).exists():
        return None
    messages = _newest_messages(session_id, before, limit + 1)
    has_more = len(messages) > limit
    messages = messages[:limit]
    messages.reverse()
    return HistoryPage(messages, has_more)


def _hosted_by(session_ids: list[str], channel: str) -> set[str]:
    rows = (
        GatewaySession.objects.filter(pk__in=session_ids, host_channel=channel)
        .exclude(status=SessionStatus.CLOSED)
        .values_list("id", flat=True)
    )
    return set(rows)


def _claimed_hosts() -> list[str]:
    rows = (
        GatewaySession.objects.exclude(status=SessionStatus.CLOSED)
        .exclude(status=SessionStatus.DETACHED, attached=0)
        .values_list("host_channel", flat=True)
        .distinct()
    )
    return sorted(rows)
