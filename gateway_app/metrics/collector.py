"""
The scrape: a collector that reads this worker's session host when Prometheus asks (live
state as gauges, the host's own event counters as counters) and serves the event families
of ``families`` beside them, every sample labelled with the worker's name. It runs on the
event loop that owns the host, so it reads the host's real state without locks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..models import CloseReason
from .families import EVENTS

if TYPE_CHECKING:
    from ..sessions.host import SessionHost
    from ..sessions.state import LiveSession

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


#: Gauges summed over the live sessions: (name, help, the count one session adds).
SESSION_GAUGES: tuple[tuple[str, str, Callable[[LiveSession], int]], ...] = (
    ("hermes_running_turns", "Agent turns running on this worker.", lambda s: s.turn is not None),
    (
        "hermes_pending_questions",
        "Approval and clarify requests waiting for an answer.",
        lambda s: len(s.pending),
    ),
    (
        "hermes_pending_reaps",
        "Detached sessions whose reap is scheduled.",
        lambda s: s.reap_timer is not None,
    ),
    (
        "hermes_slash_workers_alive",
        "Slash-command worker processes alive for this worker's sessions.",
        lambda s: s.slash is not None and s.slash.alive,
    ),
)


def _state(host: SessionHost, worker: str) -> Iterable[Metric]:
    sessions = list(host.sessions.values())
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
    statuses = Counter(session.status for session in sessions)
    for status in sorted({"live", "running", "detached", *statuses}):
        by_status.add_metric([worker, str(status)], statuses[status])
    yield by_status
    for name, doc, count in SESSION_GAUGES:
        yield _gauge(name, doc, worker, sum(count(s) for s in sessions))


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
