"""
The scrape: a collector that reads this worker's session host when Prometheus asks (live
state as gauges, the host's own event counters as counters) and serves the event families
of ``families`` beside them, every sample labelled with the worker's name. It runs on the
event loop that owns the host, so it reads the host's real state without locks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..models import CloseReason
from ..sessions.state import SessionCounts
from .families import EVENTS

if TYPE_CHECKING:
    from ..sessions.host import SessionHost

WORKER = "worker"

#: ``SessionHost.counters`` keys served as ``hermes_channel_layer_errors_total{kind}``.
LAYER_ERRORS = {"layer_errors": "group", "publish_failures": "publish"}


class WorkerCollector(Collector):
    """Every metric of one worker's host, read at scrape time, labelled ``worker``."""

    def __init__(self, host: SessionHost | None = None, events: CollectorRegistry = EVENTS):
        #: None: the worker's running host (``current_host()``), looked up per scrape.
        self.host = host
        self.events = events

    def _host(self) -> SessionHost | None:
        if self.host is not None:
            return self.host
        from ..sessions.host import current_host

        return current_host()

    def collect(self) -> Iterator[Metric]:
        host = self._host()
        if host is None:
            return
        worker = host.worker_name
        yield from _state(host, worker)
        yield from _host_counters(host, worker)
        for family in self.events.collect():
            yield _labelled(family, worker)


def _gauge(name: str, doc: str, worker: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=[WORKER])
    family.add_metric([worker], value)
    return family


#: Gauges of the live sessions' counts: (name, help, the ``SessionCounts`` field).
SESSION_GAUGES: tuple[tuple[str, str, str], ...] = (
    ("hermes_running_turns", "Agent turns running on this worker.", "running_turns"),
    (
        "hermes_pending_questions",
        "Approval and clarify requests waiting for an answer.",
        "pending_questions",
    ),
    ("hermes_pending_reaps", "Detached sessions whose reap is scheduled.", "pending_reaps"),
    (
        "hermes_slash_workers_alive",
        "Slash-command worker processes alive for this worker's sessions.",
        "slash_workers",
    ),
)


def _state(host: SessionHost, worker: str) -> Iterable[Metric]:
    counts = SessionCounts.of(list(host.sessions.values()))
    connections = GaugeMetricFamily(
        "hermes_connections",
        "Open client connections on this worker (remote: proxies of other workers' sockets).",
        labels=[WORKER, "transport"],
    )
    by_transport = Counter(ctx.transport for ctx in host.connections.values())
    for transport in sorted({"websocket", "stdio", *by_transport}):
        connections.add_metric([worker, transport], by_transport[transport])
    yield connections
    by_status = GaugeMetricFamily(
        "hermes_sessions",
        "Live sessions hosted by this worker, by status.",
        labels=[WORKER, "status"],
    )
    statuses = counts.by_status
    for status in sorted({"live", "running", "detached", *statuses}):
        by_status.add_metric([worker, str(status)], statuses.get(status, 0))
    yield by_status
    for name, doc, field in SESSION_GAUGES:
        yield _gauge(name, doc, worker, getattr(counts, field))


def _counter(name: str, doc: str, worker: str, value: float) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=[WORKER])
    family.add_metric([worker], value)
    return family


def _host_counters(host: SessionHost, worker: str) -> Iterable[Metric]:
    counts = host.counters
    yield _counter(
        "hermes_sessions_created", "Sessions created on this worker.", worker, counts["created"]
    )
    closed = CounterMetricFamily(
        "hermes_sessions_closed",
        "Sessions ended by this worker, by reason (closed, reaped, ttl, evicted).",
        labels=[WORKER, "reason"],
    )
    for reason in CloseReason.values:
        closed.add_metric([worker, reason], counts[reason])
    yield closed
    yield _counter(
        "hermes_quota_evictions",
        "Sessions evicted because their user reached MAX_SESSIONS_PER_USER.",
        worker,
        counts["quota_evictions"],
    )
    yield _counter(
        "hermes_cold_starts",
        "Stored sessions revived on this worker.",
        worker,
        counts["cold_starts"],
    )
    yield _counter(
        "hermes_takeovers",
        "Sessions of a dead worker taken over by this one.",
        worker,
        counts["takeovers"],
    )
    yield _counter(
        "hermes_heartbeat_failures",
        "Heartbeats to the registry's Redis that failed.",
        worker,
        counts["heartbeat_failures"],
    )
    layer = CounterMetricFamily(
        "hermes_channel_layer_errors",
        "Channel-layer (Redis) calls that failed: group membership or event publishing.",
        labels=[WORKER, "kind"],
    )
    for key, kind in LAYER_ERRORS.items():
        layer.add_metric([worker, kind], counts[key])
    yield layer


def _labelled(family: Metric, worker: str) -> Metric:
    """``family`` with ``worker`` first in every sample's labels."""
    family.samples = [
        sample._replace(labels={WORKER: worker, **sample.labels}) for sample in family.samples
    ]
    return family


def exposition(collector: WorkerCollector | None = None) -> bytes:
    """The Prometheus text exposition of one worker (its running host by default)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector or WorkerCollector())
    return generate_latest(registry)
