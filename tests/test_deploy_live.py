"""The deployment launcher: N daphne workers on one port (daphne --fd) with a local Redis."""

import asyncio
import json
import re
import signal
import socket
import subprocess
import threading
import urllib.request
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlparse

import httpx
import psutil
import pytest
import redis

from tests.support.live import ws_rpc
from tests.support.metrics import value
from tests.support.poll import eventually_sync
from tests.support.procs import assert_gone_sync, is_running
from tests.support.servers import (
    PYTHON,
    REPO,
    Database,
    descendants,
    free_port,
    wait_for_port,
)

pytestmark = pytest.mark.live


class Deployment(NamedTuple):
    port: int
    token: str
    redis_port: int
    log_path: Path
    launcher_pid: int


@pytest.fixture
def deployment(tmp_path):
    """``scripts/deploy.py --workers 2`` on free ports, its stderr in a file."""
    database = Database(tmp_path)
    token = database.token("alice")
    port, redis_port = free_port(), free_port()
    log_path = tmp_path / "deploy.log"
    # A file, not a pipe: nobody reads it while the launcher runs.
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                PYTHON,
                "scripts/deploy.py",
                "--workers",
                "2",
                "--port",
                str(port),
                "--redis-url",
                f"redis://127.0.0.1:{redis_port}/0",
            ],
            cwd=REPO,
            env=database.env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    children = []
    try:
        wait_for_port(port, process=process)
        children = descendants(process.pid)
        yield Deployment(port, token, redis_port, log_path, process.pid)
    finally:
        children = children + descendants(process.pid)
        process.send_signal(signal.SIGTERM)
        process.wait(20)
    assert_gone_sync(children, within=10)


def healthz(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as response:
        return json.load(response)


async def test_launcher_serves_sessions_across_its_workers(deployment):
    """Tests that sessions created through one port work from whichever worker answers."""
    port, token = deployment.port, deployment.token
    workers = set()
    for _ in range(20):
        health = await asyncio.to_thread(healthz, port)
        assert health["status"] == "ok"
        assert health["channel_layer"]["backend"] == "ResilientRedisChannelLayer"
        workers.add(health["worker"])
    assert workers <= {"worker-0", "worker-1"}
    url = f"ws://127.0.0.1:{port}/api/ws"
    async with ws_rpc(url, token) as rpc:
        sid = (await rpc.call("session.create"))["session_id"]
        await rpc.turn(sid, "through the launcher")
    for _ in range(4):
        async with ws_rpc(url, token) as rpc:
            resumed = await rpc.call("session.resume", {"session_id": sid})
            assert resumed["messages"][0]["content"] == "through the launcher"
            # Stored too, by a host that /healthz started (whichever worker answers).
            listed = await asyncio.wait_for(rpc.call("session.list"), 10)
            assert sid in [row["session_id"] for row in listed["sessions"]]


def worker_redis_url(launcher_pid):
    """The REDIS_URL the launcher gave its daphne workers."""
    for child in descendants(launcher_pid):
        if "hermes_site.serving" in child.cmdline():
            return child.environ()["REDIS_URL"]
    raise AssertionError("no daphne worker found")


async def test_the_launchers_redis_refuses_clients_without_its_password(deployment):
    """Tests that the redis-server the launcher starts answers an unauthenticated client
    with NOAUTH, while the workers (given the password in REDIS_URL) serve sessions."""
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=deployment.redis_port, socket_timeout=5).ping()
    url = f"ws://127.0.0.1:{deployment.port}/api/ws"
    async with ws_rpc(url, deployment.token) as rpc:
        sid = (await rpc.call("session.create"))["session_id"]
        await rpc.turn(sid, "on an authenticated redis")
    assert healthz(deployment.port)["channel_layer"]["ok"]
    authenticated = redis.Redis.from_url(worker_redis_url(deployment.launcher_pid))
    try:
        assert authenticated.ping()
    finally:
        authenticated.close()


def test_the_launcher_never_shows_its_redis_password(deployment):
    """Tests that the generated password appears neither in the launcher's output nor on
    redis-server's command line (which every local user can read)."""
    password = urlparse(worker_redis_url(deployment.launcher_pid)).password
    assert password and len(password) >= 32
    assert password not in deployment.log_path.read_text()
    (server,) = [
        child
        for child in descendants(deployment.launcher_pid)
        if "redis-server" in child.name() or "redis-server" in " ".join(child.cmdline())
    ]
    assert password not in " ".join(server.cmdline())


def test_launcher_that_cannot_listen_exits_nonzero_and_stops_its_redis(tmp_path):
    """Tests that a launch failing after redis-server started (here: the port is taken)
    exits non-zero with a clear message and leaves no redis-server behind."""
    database = Database(tmp_path)
    redis_port = free_port()
    log_path = tmp_path / "deploy.log"
    # A file, not a pipe: a redis-server left behind would hold a pipe open forever.
    with socket.socket() as taken, log_path.open("w") as log:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = subprocess.run(
            [
                PYTHON,
                "scripts/deploy.py",
                "--workers",
                "1",
                "--port",
                str(taken.getsockname()[1]),
                "--redis-url",
                f"redis://127.0.0.1:{redis_port}/0",
            ],
            cwd=REPO,
            env=database.env,
            stdout=subprocess.DEVNULL,
            stderr=log,
            timeout=120,
        )
    stderr = log_path.read_text()
    started = re.search(r"started redis-server on \S+ \(pid (\d+)\)", stderr)
    assert started, stderr
    redis_pid = int(started.group(1))
    leftover = is_running(redis_pid)
    if leftover:  # the bug under test: do not leave it running for the next test
        psutil.Process(redis_pid).kill()
    assert result.returncode != 0
    assert not leftover, "the launcher left its redis-server running"
    assert "cannot listen on 127.0.0.1:" in stderr


### --metrics-port and --proxy-headers ###

#: The launcher's METRICS_ALLOW: a scraper connecting from 127.0.0.2, not from 127.0.0.1.
SCRAPER = "127.0.0.2"


class MetricsDeployment(NamedTuple):
    port: int
    metrics_ports: list[int]
    log_path: Path
    process: subprocess.Popen


def free_port_run(count: int) -> int:
    """The first of ``count`` consecutive free loopback ports."""
    while True:
        base = free_port()
        try:
            for port in range(base, base + count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue


@pytest.fixture(scope="module")
def metrics_deployment(tmp_path_factory):
    """``deploy.py --workers 2 --metrics-port BASE --proxy-headers``, metrics allowed to
    SCRAPER's address only; one launcher for the module's metrics tests."""
    tmp_path = tmp_path_factory.mktemp("deploy-metrics")
    database = Database(tmp_path)
    port, redis_port, base = free_port(), free_port(), free_port_run(2)
    log_path = tmp_path / "deploy.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [PYTHON, "scripts/deploy.py", "--workers", "2", "--port", str(port)]
            + ["--redis-url", f"redis://127.0.0.1:{redis_port}/0", "--proxy-headers"]
            + ["--metrics-port", str(base)],
            cwd=REPO,
            env={**database.env, "HERMES_METRICS_ALLOW": f"{SCRAPER}/32"},
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    children = []
    try:
        for listening in (port, base, base + 1):
            wait_for_port(listening, timeout=60, process=process)
        children = descendants(process.pid)
        yield MetricsDeployment(port, [base, base + 1], log_path, process)
    finally:
        children = children + descendants(process.pid)
        process.send_signal(signal.SIGTERM)
        process.wait(40)
    assert_gone_sync(children, within=10)


def scrape(port: int, source: str = SCRAPER, **headers: str) -> httpx.Response:
    """GET /metrics on ``port`` from the local address ``source``."""
    with httpx.Client(transport=httpx.HTTPTransport(local_address=source)) as client:
        return client.get(f"http://127.0.0.1:{port}/metrics", headers=headers, timeout=10)


def worker_of(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    (worker,) = set(re.findall(r'worker="([^"]+)"', response.text))
    return worker


def test_each_worker_answers_metrics_on_a_port_of_its_own(metrics_deployment):
    """Tests that with --metrics-port BASE, worker i answers every scrape of BASE+i (one
    Prometheus target per worker), and the launcher names the targets."""
    workers = [worker_of(scrape(port)) for port in metrics_deployment.metrics_ports]
    assert workers == ["worker-0", "worker-1"]
    for _ in range(3):
        assert [worker_of(scrape(p)) for p in metrics_deployment.metrics_ports] == workers
    log = metrics_deployment.log_path.read_text()
    for index, port in enumerate(metrics_deployment.metrics_ports):
        assert f"worker-{index} metrics on http://127.0.0.1:{port}/metrics" in log


def test_with_proxy_headers_a_worker_sees_the_forwarded_client_address(metrics_deployment):
    """Tests that with --proxy-headers the workers take a request's address from
    X-Forwarded-For (what nginx sets): the login lockout and the logs see the real client."""
    response = scrape(metrics_deployment.port, "127.0.0.1", **{"X-Forwarded-For": "198.51.100.9"})
    assert response.status_code == 403
    eventually_sync(
        lambda: "refused /metrics to 198.51.100.9" in metrics_deployment.log_path.read_text(),
        within=10,
    )


def test_a_forwarded_for_claiming_an_allowed_address_gets_no_metrics(metrics_deployment):
    """Tests the attack on --proxy-headers: a client whose own address is not allowed sends
    X-Forwarded-For naming the allowed scraper's; the worker then sees that address, and
    still refuses, on the shared port and on a metrics port."""
    forged = {"X-Forwarded-For": SCRAPER}
    for port in (metrics_deployment.port, *metrics_deployment.metrics_ports):
        assert scrape(port, "127.0.0.1").status_code == 403
        assert scrape(port, "127.0.0.1", **forged).status_code == 403
        assert scrape(port, SCRAPER).status_code == 200


def test_a_rolling_restart_keeps_each_workers_metrics_port_answering(metrics_deployment):
    """Tests that SIGHUP's rolling restart hands each worker's metrics port to its
    replacement: every scrape meanwhile answers with that worker's label (the port is
    never unbound), and afterwards it is the new process that answers."""
    ports = metrics_deployment.metrics_ports

    def started(port: int, worker: str) -> float:
        return value(scrape(port).text, "hermes_frames_received_created", worker=worker)

    before = [started(port, f"worker-{index}") for index, port in enumerate(ports)]
    log_path, done = metrics_deployment.log_path, threading.Event()
    seen: list[tuple[int, str]] = []
    errors: list[BaseException] = []

    def scrape_until_done() -> None:
        try:
            while not done.is_set():
                for port in ports:
                    seen.append((port, worker_of(scrape(port))))
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)

    metrics_deployment.process.send_signal(signal.SIGHUP)
    scraper = threading.Thread(target=scrape_until_done)
    scraper.start()
    try:
        eventually_sync(lambda: "rolling restart done" in log_path.read_text(), within=90)
    finally:
        done.set()
        scraper.join(30)
    assert not errors and not scraper.is_alive() and seen
    assert {worker for port, worker in seen if port == ports[0]} == {"worker-0"}
    assert {worker for port, worker in seen if port == ports[1]} == {"worker-1"}
    after = [started(port, f"worker-{index}") for index, port in enumerate(ports)]
    assert after[0] > before[0] and after[1] > before[1]
