"""The scrape-time collector (``gateway_app.metrics.collector``): the live state of the
worker's host as gauges and the host's own counters, each sample labelled ``worker``."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway_app.metrics.collector import WorkerCollector, exposition
from gateway_app.sessions.host import get_host
from tests.support.metrics import scrape, value
from tests.support.poll import eventually

pytestmark = pytest.mark.django_db(transaction=True)


def gauge(host, name: str, **labels: str) -> float | None:
    return value(scrape(host), name, worker=host.worker_name, **labels)


async def test_every_sample_carries_the_workers_name(connect, alice, settings):
    """Tests that each sample of the scrape, gauges and event families alike, has the
    worker label set to the host's WORKER_NAME."""
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "WORKER_NAME": "w-7"}
    rpc = await connect(alice)
    await rpc.error("no.such.method")
    families = list(text_string_to_metric_families(scrape(await get_host())))
    assert len(families) > 10
    for family in families:
        for sample in family.samples:
            assert sample.labels.get("worker") == "w-7", sample


async def test_no_host_no_samples(fresh_host):
    """Tests that a process whose host has not started serves an empty scrape (nothing
    of another process's state, no crash)."""
    assert exposition(WorkerCollector()) == b""


async def test_connections_and_sessions_by_status_follow_the_host(connect, alice):
    """Tests that the connection gauge and sessions by status are the host's state at each
    scrape: live while attached, detached (with a pending reap) once the socket closed."""
    rpc = await connect(alice)
    host = await get_host()
    assert gauge(host, "hermes_connections", transport="websocket") == 1
    await rpc.call("session.create")
    assert gauge(host, "hermes_sessions", status="live") == 1
    assert gauge(host, "hermes_pending_reaps") == 0
    await rpc.connection.close()
    assert gauge(host, "hermes_connections", transport="websocket") == 0
    assert gauge(host, "hermes_sessions", status="live") == 0
    assert gauge(host, "hermes_sessions", status="detached") == 1
    assert gauge(host, "hermes_pending_reaps") == 1


async def test_a_running_turn_and_its_question_are_shown(connect, alice):
    """Tests that a turn waiting on an approval counts as a running turn, a running session
    and a pending question, and none remain once it is answered and done."""
    rpc = await connect(alice)
    host = await get_host()
    session_id = (await rpc.call("session.create"))["session_id"]
    turn_id = (await rpc.call("prompt.submit", {"session_id": session_id, "text": "!tool ls"}))[
        "turn_id"
    ]
    request = await rpc.event("approval.request")
    assert gauge(host, "hermes_running_turns") == 1
    assert gauge(host, "hermes_sessions", status="running") == 1
    assert gauge(host, "hermes_pending_questions") == 1
    await rpc.call(
        "approval.respond",
        {
            "session_id": session_id,
            "request_id": request["payload"]["request_id"],
            "choice": "deny",
        },
    )
    await rpc.event("message.complete", turn_id=turn_id)
    await eventually(lambda: gauge(host, "hermes_running_turns") == 0)
    assert gauge(host, "hermes_pending_questions") == 0


async def test_slash_workers_alive_are_counted(connect, alice):
    """Tests that a session's slash worker counts while alive and not after the close."""
    rpc = await connect(alice)
    host = await get_host()
    session_id = (await rpc.call("session.create"))["session_id"]
    await rpc.call("slash.exec", {"session_id": session_id, "command": "/status"})
    assert gauge(host, "hermes_slash_workers_alive") == 1
    await rpc.call("session.close", {"session_id": session_id})
    assert gauge(host, "hermes_slash_workers_alive") == 0


async def test_sessions_created_and_closed_by_reason_are_counted(connect, alice, limits):
    """Tests that creates, closes and reaps count as they happen, each close by reason."""
    limits(REAP_GRACE_S=0.05, SWEEP_INTERVAL_S=0.05)
    rpc = await connect(alice)
    host = await get_host()
    closed = (await rpc.call("session.create"))["session_id"]
    await rpc.call("session.close", {"session_id": closed})
    await rpc.call("session.create")
    assert gauge(host, "hermes_sessions_created_total") == 2
    assert gauge(host, "hermes_sessions_closed_total", reason="closed") == 1
    assert gauge(host, "hermes_sessions_closed_total", reason="reaped") == 0
    await rpc.connection.close()
    await eventually(lambda: gauge(host, "hermes_sessions_closed_total", reason="reaped") == 1)
    assert gauge(host, "hermes_sessions_closed_total", reason="ttl") == 0
    assert gauge(host, "hermes_sessions_closed_total", reason="evicted") == 0
