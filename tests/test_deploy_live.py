"""The deployment launcher: N daphne workers on one port (daphne --fd) with a local Redis."""

import asyncio
import json
import re
import signal
import socket
import subprocess
import urllib.request
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlparse

import psutil
import pytest
import redis

from tests.support.live import ws_rpc
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
