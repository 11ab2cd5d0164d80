"""The in-memory rows behind ``session.list``: read from the store once per user, kept
current by the host's own changes, re-read after ``LIST_CACHE_S``."""

import asyncio

from gateway_app.sessions.index import SessionIndex


class FakeStore:
    """Counts reads; ``gate`` (when set) holds a read until released."""

    def __init__(self, rows):
        self.rows = rows
        self.reads = 0
        self.gate: asyncio.Event | None = None

    async def list_for_user(self, user_id):
        self.reads += 1
        snapshot = [dict(row) for row in self.rows]
        if self.gate is not None:
            await self.gate.wait()
        return snapshot


def row(sid, **fields):
    return {"session_id": sid, "status": "live", "title": "", **fields}


async def test_rows_are_read_from_the_store_once_per_user():
    """Tests that repeated list calls within the cache time cost one store read."""
    store = FakeStore([row("a")])
    index = SessionIndex(store, ttl_s=60)
    for _ in range(5):
        assert [r["session_id"] for r in await index.rows(1)] == ["a"]
    assert store.reads == 1


async def test_changes_made_by_this_host_show_without_a_read():
    """Tests that upserts (create in front, status change in place) show at once."""
    store = FakeStore([row("a")])
    index = SessionIndex(store, ttl_s=60)
    await index.rows(1)
    index.upsert(1, "b", status="live", title="new")
    index.upsert(1, "a", status="closed")
    rows = await index.rows(1)
    assert [(r["session_id"], r["status"]) for r in rows] == [("b", "live"), ("a", "closed")]
    assert store.reads == 1


async def test_rows_stay_newest_first_as_sessions_are_added():
    """Tests that the stored rows keep the store's newest-first order and every session
    created since comes before them, newest first."""
    store = FakeStore([row("c"), row("b"), row("a")])
    index = SessionIndex(store, ttl_s=60)
    await index.rows(1)
    index.upsert(1, "d", status="live")
    index.upsert(1, "e", status="live")
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
    index.upsert(1, "b", status="live")
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
