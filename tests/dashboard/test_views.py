"""The dashboard's views: the chat page, the health check and the admin's live data."""

from __future__ import annotations

import asyncio
import time

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse

from gateway_app.dashboard import views
from gateway_app.models import GatewaySession
from gateway_app.sessions.drain import worker_drain
from gateway_app.sessions.host import get_host

pytestmark = pytest.mark.django_db(transaction=True)

LIVE_JSON = "admin:gateway_app_gatewaysession_live_json"


### The live page's data ###


async def test_live_json_requires_staff(fresh_host, async_client, alice):
    """Tests that the live JSON endpoint answers 403 to anonymous and non-staff users."""
    url = reverse(LIVE_JSON)
    assert (await async_client.get(url)).status_code == 403
    await async_client.aforce_login(alice)
    response = await async_client.get(url)
    assert response.status_code == 403
    assert response.json() == {"error": "staff only"}


async def test_live_json_reports_the_hosts_real_state(connect, alice, admin_user, async_client):
    """Tests that the live numbers come from the running host: connections, sessions by
    status, pending reaps, slash workers, counters - plus database totals."""
    rpc = await connect(alice)
    sid = (await rpc.call("session.create", {}))["session_id"]
    await rpc.call("slash.exec", {"session_id": sid, "command": "/status"})
    host = await get_host()
    await host.store.flush()
    await async_client.aforce_login(admin_user)

    response = await async_client.get(reverse(LIVE_JSON))
    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"]
    data = response.json()
    assert data["host"]["connections"] == 1
    assert data["host"]["by_status"] == {"live": 1}
    assert data["host"]["slash_workers"] == 1
    assert len(data["slash_worker_pids"]) == 1
    assert data["host"]["counters"]["created"] == 1
    assert data["host"]["pending_reaps"] == []
    assert data["db"]["sessions_by_status"] == {"live": 1}

    await rpc.connection.close()  # detach: a reap is now pending
    data = (await async_client.get(reverse(LIVE_JSON))).json()
    assert data["host"]["connections"] == 0
    assert data["host"]["by_status"] == {"detached": 1}
    (reap,) = data["host"]["pending_reaps"]
    assert reap["session_id"] == sid and reap["due_in_s"] > 0


async def test_live_json_tells_rows_of_a_stopped_worker_from_running_ones(
    connect, alice, admin_user, async_client
):
    """Tests that open session rows left by a worker that no longer runs are marked as such
    on the live page, while this worker's own rows show as running."""
    rpc = await connect(alice)
    await rpc.call("session.create", {})
    host = await get_host()
    await host.store.flush()
    await sync_to_async(GatewaySession.objects.create)(
        id="d" * 32, user=alice, status="live", attached=1, host_worker="gone:1"
    )
    await async_client.aforce_login(admin_user)
    workers = (await async_client.get(reverse(LIVE_JSON))).json()["db"]["open_sessions_by_worker"]
    assert workers[host.worker_name]["running"] is True
    assert workers["gone:1"] == {"sessions": 1, "attached": 1, "running": False}


LIVE_SAMPLES_JSON = "admin:gateway_app_gatewaysession_live_samples_json"


async def test_live_samples_require_staff(fresh_host, async_client, alice):
    """Tests that the charts' samples answer 403 to anonymous and non-staff users, and
    carry no figures in that answer."""
    url = reverse(LIVE_SAMPLES_JSON)
    assert (await async_client.get(url)).json() == {"error": "staff only"}
    assert (await async_client.get(url)).status_code == 403
    await async_client.aforce_login(alice)
    response = await async_client.get(url)
    assert response.status_code == 403
    assert response.json() == {"error": "staff only"}


async def test_live_samples_give_this_workers_ring(
    settings, connect, alice, admin_user, async_client
):
    """Tests that the charts get this worker's samples, oldest first, with the latency of a
    finished turn (prompt.submit to message.complete), never cached."""
    # Samples only when the test takes them.
    settings.HERMES_GATEWAY = {
        **settings.HERMES_GATEWAY,
        "LIVE_SAMPLE_INTERVAL_S": 3600,
        "LIVE_SAMPLE_WINDOW_S": 36000,
    }
    rpc = await connect(alice)
    sid = (await rpc.call("session.create", {}))["session_id"]
    await rpc.turn(sid, "hi there")
    host = await get_host()
    host.samples.sample(wall=1.0, now=time.monotonic())
    host.samples.sample(wall=2.0, now=time.monotonic())
    await async_client.aforce_login(admin_user)

    response = await async_client.get(reverse(LIVE_SAMPLES_JSON))
    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"]
    (worker,) = response.json()["workers"]
    assert worker["worker"] == host.worker_name
    first, second = worker["samples"][-2:]
    assert (first["t"], second["t"]) == (1.0, 2.0)
    assert first["turns"] == 1 and first["connections"] == 1 and first["live"] == 1
    assert first["p50_ms"] is not None and first["p50_ms"] == first["p99_ms"] > 0
    assert second["turns"] == 0


### Chat page and health ###


def test_chat_page_requires_login(client, alice):
    """Tests that /chat/ sends anonymous users to the admin login, and serves the client."""
    response = client.get("/chat/")
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('admin:login')}?next=/chat/"
    client.force_login(alice)
    response = client.get("/chat/")
    assert response.status_code == 200
    assert b"gateway_app/chat.js" in response.content
    assert b'data-ws-path="/api/ws"' in response.content
    assert client.get("/").headers["Location"] == "/chat/"


async def test_healthz_checks_layer_and_database(async_client):
    """Tests that /healthz answers 200 after a layer round trip and a database query."""
    response = await async_client.get("/healthz")
    assert response.status_code == 200
    data = response.json()
    assert data["status"] == "ok"
    assert data["channel_layer"]["ok"] and data["database"]["ok"]


async def test_healthz_is_503_draining_while_the_worker_drains(async_client, monkeypatch):
    """Tests that /healthz answers 503 "draining" while this worker drains, so balancers
    stop sending it new connections."""
    monkeypatch.setattr(worker_drain, "draining", True)
    response = await async_client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "draining"}


async def test_healthz_is_503_when_the_database_fails(async_client, monkeypatch):
    """Tests that a failing database query makes /healthz answer 503 and say why."""

    def broken() -> None:
        raise RuntimeError("database is down")

    monkeypatch.setattr(views, "_db_ping", broken)
    response = await async_client.get("/healthz")
    assert response.status_code == 503
    data = response.json()
    assert data["database"] == {"ok": False, "error": "RuntimeError: database is down"}
    assert data["channel_layer"]["ok"]


async def test_healthz_is_503_when_the_layer_hangs(async_client, monkeypatch):
    """Tests that a channel layer that never delivers makes /healthz answer 503 in time."""

    class StuckLayer:
        async def new_channel(self, prefix: str = "") -> str:
            return prefix + "x"

        async def send(self, channel: str, message: dict) -> None:
            pass

        async def receive(self, channel: str) -> dict:
            await asyncio.Event().wait()
            return {}

    monkeypatch.setattr(views, "get_channel_layer", StuckLayer)
    monkeypatch.setattr(views, "HEALTH_TIMEOUT_S", 0.2)
    response = await async_client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["channel_layer"]["ok"] is False
    assert response.json()["database"]["ok"] is True


async def test_sessions_persist_when_healthz_started_the_host(
    fresh_host, async_client, connect, alice
):
    """Tests that a host first started by an HTTP request (/healthz, the load balancer's
    first call) keeps writing sessions once that request is over: its background tasks do
    not inherit the request's short-lived thread executor."""
    assert (await async_client.get("/healthz")).status_code == 200
    rpc = await connect(alice)
    sid = (await rpc.call("session.create", {"title": "after healthz"}))["session_id"]
    listed = await asyncio.wait_for(rpc.call("session.list"), 5)
    assert [s["session_id"] for s in listed["sessions"]] == [sid]
    assert await GatewaySession.objects.filter(pk=sid).aexists()
