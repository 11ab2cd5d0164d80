"""The nginx recipe of deploy/nginx/ in front of real daphne (with --proxy-headers, as
scripts/deploy.py --proxy-headers runs it): WebSockets pass through it, half-open requests
stay at nginx, and a client can pose neither as HTTPS nor as another address."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect as ws_connect

from tests.support.live import sync_call
from tests.support.poll import eventually_sync
from tests.support.procs import assert_gone_sync
from tests.support.servers import REPO, Database, GatewayServer, free_port, wait_for_port

pytestmark = pytest.mark.live

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SITE = REPO / "deploy" / "nginx" / "hermes-gateway.conf"
PROXY = REPO / "deploy" / "nginx" / "hermes-gateway-proxy.conf"
HALF_OPEN = 200
#: client_header_timeout of the proxy part.
HEADER_TIMEOUT_S = 10


def nginx_conf(prefix: Path, port: int, upstream_port: int) -> str:
    """The site's http-level part (map, zone, upstream) pointed at ``upstream_port``, and a
    plain-HTTP loopback server with the repository's proxy part, in a temporary prefix."""
    site = SITE.read_text()
    http_level = site[: site.index("\nserver {")].replace(
        "server 127.0.0.1:8000;", f"server 127.0.0.1:{upstream_port};"
    )
    temp = "\n".join(
        f"    {kind}_temp_path {prefix / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""daemon off;
worker_processes 1;
pid {prefix / "nginx.pid"};
events {{ worker_connections 1024; }}
http {{
    access_log {prefix / "access.log"};
{temp}
{http_level}
    server {{
        listen 127.0.0.1:{port};
        include {PROXY};
    }}
}}
"""


@pytest.fixture(scope="module")
def proxied(tmp_path_factory) -> Iterator[tuple[GatewayServer, str, str]]:
    """daphne (HTTPS settings, trusting X-Forwarded-Proto, client addresses from
    X-Forwarded-For) behind nginx on a loopback port; yields (daphne, nginx's http URL, a
    token)."""
    if not Path(NGINX).exists():
        pytest.skip("nginx is not installed")
    prefix = tmp_path_factory.mktemp("nginx")
    database = Database(prefix)
    token = database.token("alice")
    env = {"HERMES_HTTPS": 1, "HERMES_PROXY_SSL_HEADER": "X-Forwarded-Proto"}
    with GatewayServer(database, env=env, daphne_args=("--proxy-headers",)) as daphne:
        port = free_port()
        (prefix / "nginx.conf").write_text(nginx_conf(prefix, port, daphne.port))
        log = open(prefix / "error.log", "wb")  # noqa: SIM115
        nginx = subprocess.Popen(
            [NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", "stderr"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port(port, process=nginx)
            yield daphne, f"http://127.0.0.1:{port}", token
        finally:
            nginx.terminate()
            nginx.wait(10)
            log.close()
        assert_gone_sync([nginx.pid], within=0)


def test_a_websocket_session_streams_through_nginx(proxied):
    """Tests that a token client reaches the gateway's WebSocket through nginx (Upgrade
    passed on) and gets a turn streamed to its message.complete."""
    _, http_url, token = proxied
    url = http_url.replace("http://", "ws://") + "/api/ws"
    headers = {"Authorization": f"Bearer {token}"}
    with ws_connect(url, additional_headers=headers, open_timeout=10) as ws:
        ready = json.loads(ws.recv(timeout=10))
        assert ready["params"]["type"] == "gateway.ready"
        session_id = sync_call(ws, 1, "session.create", {})["session_id"]
        sync_call(ws, 2, "prompt.submit", {"session_id": session_id, "text": "through the proxy"})
        deltas = []
        while True:
            event = json.loads(ws.recv(timeout=10))["params"]
            if event["type"] == "message.delta":
                deltas.append(event["payload"]["text"])
            if event["type"] == "message.complete":
                break
    assert event["payload"]["text"] == "through the proxy" == "".join(deltas)


def closed_by_peer(sock: socket.socket, timeout: float) -> bool:
    """Whether the other end closes ``sock`` within ``timeout`` seconds (sending nothing)."""
    sock.settimeout(max(timeout, 0.01))
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_half_open_requests_do_not_stop_healthz_and_are_dropped(proxied):
    """Tests that while 200 clients hold half-sent request headers open, /healthz through
    nginx answers 200 each time, and that nginx drops those clients once
    client_header_timeout (10 s) has passed, where bare daphne would hold them."""
    _, http_url, _ = proxied
    port = int(http_url.rsplit(":", 1)[1])
    held = []
    try:
        for n in range(HALF_OPEN):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow-{n}: ".encode())
            held.append(sock)
        sent_at = time.monotonic()
        with httpx.Client(timeout=5) as client:
            for _ in range(5):
                response = client.get(f"{http_url}/healthz")
                assert response.status_code == 200, response.text
                assert response.json()["status"] == "ok"
        deadline = sent_at + HEADER_TIMEOUT_S + 5
        still_open = [s for s in held if not closed_by_peer(s, deadline - time.monotonic())]
        assert still_open == []
    finally:
        for sock in held:
            sock.close()


def test_a_client_cannot_pose_as_https_through_nginx(proxied):
    """Tests that a plain-HTTP client's own X-Forwarded-Proto: https (or its underscore
    spelling) is replaced by nginx: the gateway still redirects it to HTTPS."""
    _, http_url, _ = proxied
    for header in ("X-Forwarded-Proto", "X_Forwarded_Proto"):
        response = httpx.get(f"{http_url}/chat/", headers={header: "https"}, timeout=5)
        assert response.status_code == 301, header
        assert response.headers["Location"].startswith("https://"), header


def test_a_client_cannot_pose_as_another_address_through_nginx(proxied):
    """Tests that nginx replaces a client's own X-Forwarded-For and X-Forwarded-Port with
    the client's address and port, which daphne --proxy-headers then gives the gateway (as
    daphne's access log shows: "ADDRESS:PORT - - [date] "GET ...")."""
    daphne, http_url, _ = proxied
    forged = {"X-Forwarded-For": "198.51.100.9", "X-Forwarded-Port": "1"}
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.3")) as client:
        client.get(f"{http_url}/chat/?as-another-address", headers=forged, timeout=5)
    line = eventually_sync(
        lambda: re.search(r"^(\S+) .*as-another-address", daphne.log(), re.MULTILINE), within=10
    )
    address, port = line.group(1).rsplit(":", 1)
    assert address == "127.0.0.3"
    assert port != "1"
