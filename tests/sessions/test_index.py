"""The in-memory rows behind ``session.list``: read from the store once per user, kept
current by the host's own changes, re-read after ``LIST_CACHE_S``."""

import asyncio

from gateway_app.sessions.index import SessionIndex


class FakeStore:
    """Counts reads; ``gate`` (when set) holds a read until released."""

    def __init__(self, rows):
        self.rows = rows
        self.reads = 0
        self.limits: list[int] = []
        self.gate: asyncio.Event | None = None

    async def list_page(self, user_id, limit):
        self.reads += 1
        self.limits.append(limit)
        snapshot = [dict(row) for row in self.rows]
        if self.gate is not None:
            await self.gate.wait()
        return snapshot[:limit], len(snapshot) > limit


_clock = iter(range(10**6))


def stamp():
    """A later activity time at each call."""
    return f"2026-01-01T00:00:00.{next(_clock):06d}+00:00"


def new(**fields):
    """The fields of a just-created session (as the host upserts them)."""
    now = stamp()
    return {"status": "live", "title": "", "created_at": now, "last_activity": now, **fields}


def rows_newest_first(*sids):
    """Stored rows as the store lists them: the first the most recently active."""
    made = [{"session_id": sid, **new()} for sid in reversed(sids)]
    return list(reversed(made))


def row(sid, **fields):
    return {"session_id": sid, **new(**fields)}


async def test_rows_are_read_from_the_store_once_per_user():
    """Tests that repeated list calls within the cache time cost one store read."""
    store = FakeStore([row("a")])
    index = SessionIndex(store, ttl_s=60)
    for _ in range(5):
        assert [r["session_id"] for r in await index.rows(1)] == ["a"]
    assert store.reads == 1


async def test_without_a_cache_time_each_page_reads_only_its_own_rows():
    """Tests that with LIST_CACHE_S = 0 (beside other workers) a page of 10 reads 10 rows
    (and one to tell whether more follow), not a whole window of 200 each call."""
    store = FakeStore([row(f"s{i}") for i in range(30)])
    index = SessionIndex(store, ttl_s=0)
    rows, more = await index.page(1, 10)
    assert len(rows) == 10 and more
    assert store.limits == [10]


async def test_changes_made_by_this_host_show_without_a_read():
    """Tests that upserts (create in front, status change in place) show at once."""
    store = FakeStore([row("a")])
    index = SessionIndex(store, ttl_s=60)
    await index.rows(1)
    index.upsert(1, "b", **new(title="new"))
    index.upsert(1, "a", status="closed")
    rows = await index.rows(1)
    assert [(r["session_id"], r["status"]) for r in rows] == [("b", "live"), ("a", "closed")]
    assert store.reads == 1


async def test_rows_stay_newest_first_as_sessions_are_added():
    """Tests that the stored rows keep the store's newest-first order and every session
    created since comes before them, newest first."""
    store = FakeStore(rows_newest_first("c", "b", "a"))
    index = SessionIndex(store, ttl_s=60)
    await index.rows(1)
    index.upsert(1, "d", **new())
    index.upsert(1, "e", **new())
    index.upsert(1, "b", status="closed")
    assert [r["session_id"] for r in await index.rows(1)] == ["e", "d", "c", "b", "a"]


async def test_returned_rows_are_copies():
    """Tests that a caller editing its rows (the handler overlays live state) changes
    nothing in the index."""
    index = SessionIndex(FakeStore([row("a")]), ttl_s=60)
    (first,) = await index.rows(1)
    first["status"] = "mangled"
    assert (await index.rows(1))[0]["status"] == "live"


async def test_rows_are_re_read_after_the_cache_time():
    """Tests that changes made by other processes show once LIST_CACHE_S has passed."""
    store = FakeStore([row("a")])
    index = SessionIndex(store, ttl_s=0)
    await index.rows(1)
    store.rows.append(row("other-worker"))
    assert {r["session_id"] for r in await index.rows(1)} == {"a", "other-worker"}
    assert store.reads == 2


async def test_a_change_made_during_the_read_is_not_lost():
    """Tests that a session created while the user's rows are being read shows in the list,
    even though the read started before it existed."""
    store = FakeStore([row("a")])
    store.gate = asyncio.Event()
    index = SessionIndex(store, ttl_s=60)
    reading = asyncio.create_task(index.rows(1))
    await asyncio.sleep(0)
    index.upsert(1, "b", **new())
    store.gate.set()
    await reading
    assert {r["session_id"] for r in await index.rows(1)} == {"a", "b"}


async def test_concurrent_callers_share_one_read():
    """Tests that a burst of list calls for a cold user reads the store once."""
    store = FakeStore([row("a")])
    store.gate = asyncio.Event()
    index = SessionIndex(store, ttl_s=60)
    calls = [asyncio.create_task(index.rows(1)) for _ in range(10)]
    await asyncio.sleep(0)
    store.gate.set()
    results = await asyncio.gather(*calls)
    assert all([r["session_id"] for r in rows] == ["a"] for rows in results)
    assert store.reads == 1


async def test_upsert_for_a_user_never_read_is_ignored():
    """Tests that the index only holds users that listed (the next read has the row)."""
    index = SessionIndex(FakeStore([]), ttl_s=60)
    index.upsert(7, "x", status="live")
    assert len(index) == 0


async def test_the_window_holds_only_the_newest_rows():
    """Tests that a user with more stored rows than the window holds only the newest ones,
    and the page says more follow."""
    store = FakeStore(rows_newest_first("e", "d", "c", "b", "a"))
    index = SessionIndex(store, ttl_s=60, size=3)
    rows, more = await index.page(1, 3)
    assert [r["session_id"] for r in rows] == ["e", "d", "c"]
    assert more


async def test_a_new_session_pushes_the_oldest_out_of_a_full_window():
    """Tests that creating a session keeps the window at its size: the new row is first,
    the oldest held row goes, and more rows now follow."""
    store = FakeStore(rows_newest_first("c", "b", "a"))
    index = SessionIndex(store, ttl_s=60, size=3)
    assert (await index.page(1, 3))[1] is False
    index.upsert(1, "d", **new())
    rows, more = await index.page(1, 3)
    assert [r["session_id"] for r in rows] == ["d", "c", "b"]
    assert more
    assert len(await index.rows(1)) == 3


async def test_a_smaller_page_says_more_follow():
    """Tests that a page shorter than the rows held reports more rows."""
    index = SessionIndex(FakeStore(rows_newest_first("b", "a")), ttl_s=60)
    rows, more = await index.page(1, 1)
    assert [r["session_id"] for r in rows] == ["b"] and more


async def test_activity_moves_a_row_to_the_front():
    """Tests that a change with a new activity time (a close) reorders the page."""
    index = SessionIndex(FakeStore(rows_newest_first("b", "a")), ttl_s=60)
    await index.rows(1)
    index.upsert(1, "a", status="closed", last_activity=stamp())
    assert [r["session_id"] for r in await index.rows(1)] == ["a", "b"]


async def test_a_change_to_a_row_outside_the_window_reads_again():
    """Tests that a partial change to a session the window does not hold (an old session
    cold-started) makes the next page read the store, which has its full row."""
    store = FakeStore(rows_newest_first("c", "b", "a"))
    index = SessionIndex(store, ttl_s=60, size=2)
    await index.rows(1)
    store.rows[2]["last_activity"] = stamp()
    store.rows.sort(key=lambda r: r["last_activity"], reverse=True)
    index.upsert(1, "a", status="detached")
    assert [r["session_id"] for r in await index.rows(1)] == ["a", "c"]
    assert store.reads == 2
