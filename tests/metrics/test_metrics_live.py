"""``GET /metrics`` against real daphne: a local scrape sees a session's create and close
as they happen, and a request that came through a proxy is refused."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from websockets.sync.client import connect as ws_connect

from tests.support.live import sync_call
from tests.support.metrics import value
from tests.support.poll import eventually_sync
from tests.support.servers import Database, GatewayServer

pytestmark = pytest.mark.live

WORKER = "metrics-live"


@pytest.fixture(scope="module")
def database(tmp_path_factory) -> Database:
    return Database(tmp_path_factory.mktemp("metrics"))


@pytest.fixture(scope="module")
def server(database) -> Iterator[GatewayServer]:
    with GatewayServer(database, env={"HERMES_WORKER_NAME": WORKER}) as running:
        yield running


def scrape(server: GatewayServer, **headers: str) -> httpx.Response:
    return httpx.get(f"{server.http_url}/metrics", headers=headers, timeout=10)


def test_a_local_scrape_sees_a_session_created_and_closed(server, database):
    """Tests that the scrape from loopback shows the open socket, the session while live,
    then its close by reason, and the frames the client sent, all labelled with the worker."""
    headers = {"Authorization": f"Bearer {database.token('alice')}"}
    with ws_connect(server.url, additional_headers=headers, open_timeout=10) as ws:
        json.loads(ws.recv(timeout=10))  # gateway.ready
        session_id = sync_call(ws, 1, "session.create")["session_id"]
        live = scrape(server)
        assert live.status_code == 200
        assert live.headers["content-type"].startswith("text/plain; version=")
        assert value(live.text, "hermes_connections", worker=WORKER, transport="websocket") == 1
        assert value(live.text, "hermes_sessions", worker=WORKER, status="live") == 1
        sync_call(ws, 2, "session.close", {"session_id": session_id})

        def closed() -> str | None:
            text = scrape(server).text
            done = value(text, "hermes_sessions_closed_total", worker=WORKER, reason="closed")
            return text if done == 1 else None

        text = eventually_sync(closed)
    assert value(text, "hermes_sessions_created_total", worker=WORKER) == 1
    assert value(text, "hermes_sessions", worker=WORKER, status="live") == 0
    assert value(text, "hermes_frames_received_total", worker=WORKER) == 2
    assert value(text, "hermes_frames_sent_total", worker=WORKER) >= 3  # ready + 2 results
    assert value(text, "hermes_store_batch_seconds_count", worker=WORKER) >= 1


def test_a_proxied_request_from_loopback_is_refused(server):
    """Tests that a request carrying X-Forwarded-For (a proxy on this machine passing on
    an outside client) is not served by the loopback rule."""
    response = scrape(server, **{"X-Forwarded-For": "203.0.113.7"})
    assert response.status_code == 403
    assert "hermes_" not in response.text
