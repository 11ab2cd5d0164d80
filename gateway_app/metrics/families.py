"""
The event metrics: counters and histograms that the gateway's code bumps as things happen,
in a registry of their own (never prometheus_client's global one). They carry no ``worker``
label; ``collector`` adds it to every sample at scrape time, so an event costs one
increment of a child bound in advance (or looked up once per new label value).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

#: The event families; ``collector.WorkerCollector`` serves them with the worker's name.
EVENTS = CollectorRegistry(auto_describe=True)

#: Seconds buckets for turns: from a fast echo to a long agent turn with tools.
TURN_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
#: Seconds buckets for calls between workers and database batches: milliseconds to seconds.
FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

FRAMES_RECEIVED = Counter(
    "hermes_frames_received",
    "WebSocket frames received from clients.",
    registry=EVENTS,
)
FRAMES_SENT = Counter(
    "hermes_frames_sent",
    "WebSocket frames written to clients.",
    registry=EVENTS,
)
RPC_ERRORS = Counter(
    "hermes_rpc_errors",
    "JSON-RPC error responses, by error code.",
    ["code"],
    registry=EVENTS,
)
LIMIT_HITS = Counter(
    "hermes_limit_hits",
    "Limit hits (rate, frame size, send queue, connections per user...), by kind.",
    ["kind"],
    registry=EVENTS,
)
FORWARDED_CALLS = Counter(
    "hermes_forwarded_calls",
    "Calls forwarded to the worker hosting the session, by operation and outcome.",
    ["operation", "outcome"],
    registry=EVENTS,
)
FORWARD_SECONDS = Histogram(
    "hermes_forward_seconds",
    "Seconds from sending a forwarded call to its reply (or its failure).",
    ["operation"],
    buckets=FAST_BUCKETS,
    registry=EVENTS,
)
TURN_FIRST_DELTA_SECONDS = Histogram(
    "hermes_turn_first_delta_seconds",
    "Seconds from a prompt's acceptance to its first published message.delta.",
    buckets=TURN_BUCKETS,
    registry=EVENTS,
)
TURN_SECONDS = Histogram(
    "hermes_turn_seconds",
    "Seconds from a prompt's acceptance to the end of its turn, by outcome.",
    ["outcome"],
    buckets=TURN_BUCKETS,
    registry=EVENTS,
)
STORE_BATCH_SECONDS = Histogram(
    "hermes_store_batch_seconds",
    "Seconds one write-behind batch took in the database thread.",
    buckets=FAST_BUCKETS,
    registry=EVENTS,
)
STORE_RETRIES = Counter(
    "hermes_store_retries",
    "Write-behind batches that could not reach the database and were queued again.",
    registry=EVENTS,
)
REDIS_ERRORS = Counter(
    "hermes_redis_errors",
    "Failed calls to the session registry's Redis, by operation.",
    ["operation"],
    registry=EVENTS,
)


class Children:
    """The children of a one-label family by label value, each looked up once: a later
    event skips ``labels()`` (its lock and its validation)."""

    def __init__(self, family: Counter) -> None:
        self.family = family
        self._children: dict[object, Counter] = {}

    def inc(self, label: object) -> None:
        child = self._children.get(label)
        if child is None:
            child = self._children[label] = self.family.labels(str(label))
        child.inc()


_errors = Children(RPC_ERRORS)
_limits = Children(LIMIT_HITS)
_redis = Children(REDIS_ERRORS)


def count_error(code: int) -> None:
    """One JSON-RPC error response with ``code``."""
    _errors.inc(code)


def count_limit(kind: str) -> None:
    """One hit of the limit ``kind`` (the names of ``transport.limits``' warnings)."""
    _limits.inc(kind)


def count_redis_error(operation: str) -> None:
    """One failed call of the session registry to Redis."""
    _redis.inc(operation)
