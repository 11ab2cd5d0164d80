"""The host channel's memory of recent message ids (replays within the window run once)."""

import types

from gateway_app.sessions import seen
from gateway_app.sessions.seen import SeenIds


def test_an_id_seen_within_the_window_is_a_repeat():
    """Tests that the second delivery of an id is reported, a new id is not."""
    ids = SeenIds(window_s=70)
    assert ids.first("call:a")
    assert not ids.first("call:a")
    assert ids.first("call:b")


def test_ids_older_than_the_window_are_forgotten(monkeypatch):
    """Tests that an id is kept only for the window (the signature refuses older messages),
    so the memory does not grow with uptime."""
    clock = types.SimpleNamespace(monotonic=lambda: 1000.0)
    monkeypatch.setattr(seen, "time", clock)
    ids = SeenIds(window_s=70)
    ids.first("old")
    clock.monotonic = lambda: 1071.0
    ids.first("new")
    assert len(ids) == 1
    assert ids.first("old")


def test_beyond_the_bound_the_oldest_id_goes_first_and_is_counted():
    """Tests that at most ``max_ids`` are kept: the oldest is forgotten and counted."""
    ids = SeenIds(window_s=70, max_ids=2)
    for message_id in ("a", "b", "c"):
        ids.first(message_id)
    assert len(ids) == 2 and ids.evicted == 1
    assert not ids.first("c")
    assert ids.first("a")
