"""The live page's ring of samples: bounded, in order, and its turn-latency percentiles."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

import pytest

from gateway_app.dashboard.samples import (
    LatencyWindow,
    Sampler,
    SampleRing,
    percentile,
    ring_capacity,
)

### Percentiles ###


def test_percentile_is_the_nearest_rank():
    """Tests that the percentile of 1..100 is the value of that rank (p50 = 50, p99 = 99),
    whatever order the values come in."""
    values = list(range(100, 0, -1))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100


def test_percentile_of_one_value_is_that_value_and_of_none_is_none():
    """Tests that one turn is every percentile of itself, and no turn has no percentile."""
    assert percentile([0.25], 50) == 0.25
    assert percentile([0.25], 99) == 0.25
    assert percentile([], 50) is None


def test_latency_window_keeps_only_recent_turns():
    """Tests that a turn that ended longer than the span ago no longer counts."""
    window = LatencyWindow(capacity=10, span_s=60.0)
    window.add(9.0, now=0.0)
    window.add(1.0, now=30.0)
    assert window.percentiles(now=59.0) == (1.0, 9.0)
    assert window.percentiles(now=61.0) == (1.0, 1.0)
    assert window.percentiles(now=91.0) == (None, None)


def test_latency_window_holds_at_most_its_capacity():
    """Tests that however many turns end, the window keeps only the newest ``capacity``."""
    window = LatencyWindow(capacity=4, span_s=60.0)
    for n in range(1000):
        window.add(float(n), now=1.0)
    assert len(window) == 4
    assert window.percentiles(now=1.0) == (997.0, 999.0)


### The ring ###


def test_ring_capacity_covers_the_window():
    """Tests that the ring holds a window's worth of samples (at least one)."""
    assert ring_capacity(900.0, 5.0) == 180
    assert ring_capacity(1.0, 0.3) == 4
    assert ring_capacity(1.0, 5.0) == 1


def test_ring_is_bounded_and_keeps_the_newest_in_order():
    """Tests that past its capacity the ring drops the oldest samples, oldest first after."""
    ring = SampleRing(3)
    for n in range(10):
        ring.append({"t": n})
    assert [s["t"] for s in ring.samples()] == [7, 8, 9]
    assert len(ring) == 3


### The sampler ###


@dataclass
class FakeSession:
    status: str
    turn: object | None = None
    reap_timer: object | None = None
    pending: dict = field(default_factory=dict)
    slash: object | None = None


@dataclass
class FakeHost:
    worker_name: str = "w:1"
    sessions: dict = field(default_factory=dict)
    connections: dict = field(default_factory=dict)
    counters: Counter = field(default_factory=Counter)


def test_a_sample_holds_the_hosts_figures():
    """Tests that a sample counts connections, sessions by status, running turns and
    pending reaps as they are, and the turn-latency percentiles in milliseconds."""
    host = FakeHost(
        sessions={
            "a": FakeSession("running", turn=object()),
            "b": FakeSession("detached", reap_timer=object()),
            "c": FakeSession("live"),
        },
        connections={"x": 1, "y": 2},
    )
    sampler = Sampler(host, interval_s=5.0, window_s=900.0)
    sampler.turn_completed(0.5, now=10.0)
    sampler.turn_completed(1.5, now=11.0)
    sample = sampler.sample(wall=1000.0, now=12.0)
    assert sample == {
        "t": 1000.0,
        "connections": 2,
        "live": 1,
        "running": 1,
        "detached": 1,
        "running_turns": 1,
        "pending_reaps": 1,
        "reaps": 0,
        "turns": 2,
        "p50_ms": 500.0,
        "p99_ms": 1500.0,
    }
    assert sampler.ring.samples() == [sample]


def test_reaps_and_turns_count_what_happened_since_the_last_sample():
    """Tests that reaps (grace, TTL, evictions) and finished turns are per interval, not
    running totals."""
    host = FakeHost()
    sampler = Sampler(host, interval_s=5.0, window_s=900.0)
    host.counters.update(reaped=2, ttl=1, evicted=1, closed=5)
    sampler.turn_completed(0.1, now=0.0)
    first = sampler.sample(wall=1.0, now=1.0)
    assert (first["reaps"], first["turns"]) == (4, 1)
    host.counters.update(reaped=1)
    second = sampler.sample(wall=2.0, now=2.0)
    assert (second["reaps"], second["turns"]) == (1, 0)


def test_the_export_names_the_worker_and_its_interval():
    """Tests that what other workers and the page get says whose samples they are."""
    sampler = Sampler(FakeHost(worker_name="box:7"), interval_s=0.5, window_s=60.0)
    sampler.sample(wall=3.0, now=3.0)
    exported = sampler.export()
    assert exported["worker"] == "box:7"
    assert exported["interval_s"] == 0.5
    assert exported["window_s"] == 60.0
    assert [s["t"] for s in exported["samples"]] == [3.0]


async def test_the_sampling_task_samples_until_stopped():
    """Tests that the background task appends samples on its own and ends on stop."""
    host = FakeHost()
    sampler = Sampler(host, interval_s=0.01, window_s=1.0)
    sampled = asyncio.Event()
    original = sampler.sample

    def sample(**kwargs):
        result = original(**kwargs)
        if len(sampler.ring) >= 3:
            sampled.set()
        return result

    sampler.sample = sample
    sampler.start()
    await sampled.wait()
    await sampler.stop()
    assert sampler.periodic.task is None
    count = len(sampler.ring)
    await asyncio.sleep(0.05)
    assert len(sampler.ring) == count


async def test_a_failing_sample_does_not_end_the_task(caplog):
    """Tests that one sample raising is logged and the next one is still taken."""
    sampler = Sampler(FakeHost(), interval_s=0.01, window_s=1.0)
    calls = []
    again = asyncio.Event()

    def sample(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise RuntimeError("boom")
        again.set()
        return {}

    sampler.sample = sample
    sampler.start()
    await again.wait()
    await sampler.stop()
    assert "sampling the live figures failed" in caplog.text


@pytest.mark.parametrize("status", ["closing", None])
def test_sessions_of_other_statuses_are_not_charted(status):
    """Tests that a session whose status is none of the charted ones counts in none."""
    host = FakeHost(sessions={"a": FakeSession(status)})
    sample = Sampler(host, interval_s=1.0, window_s=10.0).sample(wall=0.0, now=0.0)
    assert (sample["live"], sample["running"], sample["detached"]) == (0, 0, 0)
