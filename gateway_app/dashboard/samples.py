"""
The live page's charts: each worker samples its host's figures every
``LIVE_SAMPLE_INTERVAL_S`` into a ring holding the last ``LIVE_SAMPLE_WINDOW_S``, in memory,
with the durations of recent turns (prompt.submit to message.complete) behind the latency
percentiles. Other workers get the ring over the channel layer (``messages.SAMPLES``).
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, Protocol

from ..sessions.state import SessionCounts
from ..sessions.tasks import Periodic

logger = logging.getLogger(__name__)

#: The session statuses charted (a closed session is no longer on its host).
STATUSES = ("live", "running", "detached")
#: The close reasons counted as reaps: the grace period, the TTL and the live-session cap.
REAP_REASONS = ("reaped", "ttl", "evicted")
#: Turns kept for the latency percentiles, and how long each counts after it ended.
LATENCY_CAPACITY = 1024
LATENCY_SPAN_S = 60.0


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank ``q``-th percentile (0 < q <= 100), or None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


class LatencyWindow:
    """The durations of the newest ``capacity`` turns, each counted ``span_s`` after it ended."""

    def __init__(self, capacity: int = LATENCY_CAPACITY, span_s: float = LATENCY_SPAN_S):
        self.span_s = span_s
        self._ended: deque[tuple[float, float]] = deque(maxlen=capacity)

    def __len__(self) -> int:
        return len(self._ended)

    def add(self, duration_s: float, now: float) -> None:
        self._ended.append((now, duration_s))

    def percentiles(self, now: float) -> tuple[float | None, float | None]:
        """p50 and p99 of the turns that ended within the span before ``now``."""
        while self._ended and self._ended[0][0] < now - self.span_s:
            self._ended.popleft()
        durations = [duration for _, duration in self._ended]
        return percentile(durations, 50), percentile(durations, 99)


def ring_capacity(window_s: float, interval_s: float) -> int:
    """How many samples cover the window (at least one)."""
    return max(1, math.ceil(window_s / interval_s))


class SampleRing:
    """The newest ``capacity`` samples, oldest first; older ones are dropped."""

    def __init__(self, capacity: int):
        self._samples: deque[dict[str, Any]] = deque(maxlen=capacity)

    def __len__(self) -> int:
        return len(self._samples)

    def append(self, sample: dict[str, Any]) -> None:
        self._samples.append(sample)

    def samples(self) -> list[dict[str, Any]]:
        return list(self._samples)


class SampledHost(Protocol):
    worker_name: str
    sessions: dict[str, Any]
    connections: dict[str, Any]
    counters: Any


class Sampler:
    """Takes a sample of the host on its event loop every interval: a few counts over the
    host's sessions, no await, so sampling never holds up the loop."""

    def __init__(self, host: SampledHost, interval_s: float, window_s: float):
        self.host = host
        self.interval_s = interval_s
        self.window_s = window_s
        self.ring = SampleRing(ring_capacity(window_s, interval_s))
        self.latencies = LatencyWindow()
        self.periodic = Periodic(
            self._sample_now,
            lambda: self.interval_s,
            failure="sampling the live figures failed",
            log=logger,
            traceback=True,
        )
        self._reaps_before = 0
        self._turns = 0

    def turn_completed(self, duration_s: float, now: float | None = None) -> None:
        """A turn published its ``message.complete`` ``duration_s`` after its prompt.submit."""
        self.latencies.add(duration_s, time.monotonic() if now is None else now)
        self._turns += 1

    def sample(self, *, wall: float, now: float) -> dict[str, Any]:
        """Append and return the host's figures now (``wall``: Unix time, ``now``: monotonic)."""
        host = self.host
        counts = SessionCounts.of(list(host.sessions.values()))
        reaps = sum(host.counters[reason] for reason in REAP_REASONS)
        p50, p99 = self.latencies.percentiles(now)
        sample = {
            "t": wall,
            "connections": len(host.connections),
            **{status: counts.by_status.get(status, 0) for status in STATUSES},
            "running_turns": counts.running_turns,
            "pending_reaps": counts.pending_reaps,
            "reaps": reaps - self._reaps_before,
            "turns": self._turns,
            "p50_ms": None if p50 is None else round(p50 * 1000, 1),
            "p99_ms": None if p99 is None else round(p99 * 1000, 1),
        }
        self._reaps_before = reaps
        self._turns = 0
        self.ring.append(sample)
        return sample

    def export(self) -> dict[str, Any]:
        """The ring as the live page (and another worker's page) reads it."""
        return {
            "worker": self.host.worker_name,
            "interval_s": self.interval_s,
            "window_s": self.window_s,
            "samples": self.ring.samples(),
        }

    def start(self) -> None:
        self.periodic.start()

    async def stop(self) -> None:
        await self.periodic.stop()

    async def _sample_now(self) -> None:
        self.sample(wall=time.time(), now=time.monotonic())
