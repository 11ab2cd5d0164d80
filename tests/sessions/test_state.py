"""The in-memory transcript of a live session: bounded by HISTORY_LIMIT and HISTORY_BYTES."""

from __future__ import annotations

from types import SimpleNamespace

from gateway_app.sessions.replay import ReplayBuffer
from gateway_app.sessions.state import LiveSession, SessionCounts, message_bytes


def live_session() -> LiveSession:
    return LiveSession("a" * 32, 1, "", "", ReplayBuffer(10, 10_000))


def test_history_is_trimmed_oldest_first_beyond_history_bytes(settings):
    """Tests that remembering a message beyond HISTORY_BYTES drops the oldest ones, keeps
    the count of the whole transcript and the byte total of what is kept."""
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "HISTORY_BYTES": 1100}
    session = live_session()
    for index in range(5):
        session.remember("user", str(index) + "x" * 299)
    assert [m["content"][0] for m in session.history] == ["2", "3", "4"]
    assert session.message_count == 5
    assert session.history_bytes == sum(message_bytes(m) for m in session.history)


def test_a_message_larger_than_history_bytes_is_still_kept_alone(settings):
    """Tests that the newest message stays in memory even when it alone exceeds HISTORY_BYTES
    (the agent's context must hold the last reply)."""
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "HISTORY_BYTES": 100}
    session = live_session()
    session.remember("user", "old")
    session.remember("assistant", "y" * 500)
    assert [m["content"] for m in session.history] == ["y" * 500]


def test_history_bytes_count_utf8_not_characters(settings):
    """Tests that the budget is in UTF-8 bytes: four-byte characters fill it four times
    faster than ASCII."""
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "HISTORY_BYTES": 2000}
    session = live_session()
    for _ in range(4):
        session.remember("user", "\U0001f600" * 200)  # 800 bytes each
    assert len(session.history) == 2


def test_history_limit_still_bounds_the_count(settings):
    """Tests that HISTORY_LIMIT applies beside HISTORY_BYTES."""
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "HISTORY_LIMIT": 2}
    session = live_session()
    for text in "abc":
        session.remember("user", text)
    assert [m["content"] for m in session.history] == ["b", "c"]
    assert session.history_bytes == sum(message_bytes(m) for m in session.history)


def test_session_counts_add_up_each_sessions_state():
    """Tests that SessionCounts (the live page's, its charts' and /metrics' one source)
    counts statuses, running turns, waiting questions, scheduled reaps and live slash
    workers, and that a slash worker which died counts for nothing."""
    running, detached, idle = live_session(), live_session(), live_session()
    running.turn = object()
    running.pending = {"q1": object(), "q2": object()}
    running.slash = SimpleNamespace(alive=True)
    detached.reap_timer = object()
    running.attached.add("tab-1")
    idle.attached.add("tab-2")
    detached.slash = SimpleNamespace(alive=False)
    counts = SessionCounts.of([running, detached, idle])
    assert counts.by_status == {"running": 1, "detached": 1, "live": 1}
    assert (counts.running_turns, counts.pending_questions) == (1, 2)
    assert (counts.pending_reaps, counts.slash_workers) == (1, 1)
