"""The live page's charts in real headless chromium, against two real daphne workers that
share a real redis-server: both workers' charts side by side, moving as samples come in."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from websockets.sync.client import connect as ws_connect

from tests.support.live import sync_call
from tests.support.procs import assert_gone_sync
from tests.support.servers import Database, GatewayServer, RedisServer

pytestmark = pytest.mark.live

PASSWORD = "correct-horse-battery-staple"
LIVE_PATH = "/admin/gateway_app/gatewaysession/live/"
#: The charts of each worker (data-chart names).
CHARTS = ["connections", "sessions", "turns", "reaps", "latency"]


@pytest.fixture(scope="module")
def workers(tmp_path_factory) -> Iterator[tuple[GatewayServer, GatewayServer, str]]:
    """Workers A and B sampling every 0.2 s, on one database and one Redis; (a, b, token)."""
    database = Database(tmp_path_factory.mktemp("charts"))
    database.create_superuser("admin", PASSWORD)
    token = database.token("admin")
    with RedisServer() as redis_server:
        env = {
            "REDIS_URL": redis_server.url,
            "HERMES_LIVE_SAMPLE_INTERVAL_S": 0.2,
            "HERMES_LIVE_SAMPLE_WINDOW_S": 60,
        }
        a = GatewayServer(database, env={**env, "HERMES_WORKER_NAME": "A"}).start()
        b = GatewayServer(database, env={**env, "HERMES_WORKER_NAME": "B"}).start()
        try:
            # A host starts on first use: /healthz starts both (and their samplers).
            for server in (a, b):
                assert httpx.get(f"{server.http_url}/healthz", timeout=10).status_code == 200
            yield a, b, token
        finally:
            a.stop()
            b.stop()
        assert_gone_sync([a.pid, b.pid], within=0)


def log_in(page, server: GatewayServer) -> None:
    page.goto(f"{server.http_url}/admin/login/?next={LIVE_PATH}")
    page.fill("#id_username", "admin")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"**{LIVE_PATH}")


def run_turn(server: GatewayServer, token: str, text: str) -> None:
    """Create a session on ``server`` and run one turn there to its message.complete."""
    headers = {"Authorization": f"Bearer {token}"}
    with ws_connect(server.url, additional_headers=headers, open_timeout=10) as ws:
        json.loads(ws.recv(timeout=10))
        session_id = sync_call(ws, 1, "session.create", {})["session_id"]
        sync_call(ws, 2, "prompt.submit", {"session_id": session_id, "text": text})
        while json.loads(ws.recv(timeout=10)).get("params", {}).get("type") != "message.complete":
            pass


def panel(worker: str) -> str:
    return f"[data-testid=live-chart-worker][data-worker='{worker}']"


def test_the_charts_of_every_worker_render_and_move(workers, browser, output_dir):
    """Tests that the live page on A draws each chart of both workers (a canvas with a
    non-empty series), that new samples keep arriving, and that a turn on B shows in B's
    turn-latency chart; saves a screenshot."""
    a, b, token = workers
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    try:
        page = context.new_page()
        log_in(page, a)
        for worker in ("A", "B"):
            page.wait_for_selector(f"{panel(worker)}[data-samples]")
            for chart in CHARTS:
                selector = f"{panel(worker)} [data-chart={chart}]"
                page.wait_for_selector(f"{selector} canvas")
                page.wait_for_function(
                    f'Number(document.querySelector("{selector}").dataset.points) > 1'
                )
        workers_shown = page.eval_on_selector_all(
            "[data-testid=live-chart-worker]", "nodes => nodes.map(n => n.dataset.worker)"
        )
        assert workers_shown == ["A", "B"]

        # They move: a later sample comes in without a reload.
        last_t = float(page.get_attribute(panel("B"), "data-last-t"))
        page.wait_for_function(
            f'Number(document.querySelector("{panel("B")}").dataset.lastT) > {last_t}'
        )
        assert page.get_attribute(f"{panel('B')} [data-chart=latency]", "data-latest") == ""

        run_turn(b, token, "a turn the chart of B shows")
        page.wait_for_function(
            f"document.querySelector(\"{panel('B')} [data-chart=latency]\").dataset.latest !== ''"
        )
        latency = float(page.get_attribute(f"{panel('B')} [data-chart=latency]", "data-latest"))
        assert latency > 0
        assert page.get_attribute(f"{panel('A')} [data-chart=latency]", "data-latest") == ""

        screenshot = output_dir / "live-page-charts.png"
        page.screenshot(path=str(screenshot), full_page=True)
        print(f"live page screenshot: {screenshot}")
    finally:
        context.close()
