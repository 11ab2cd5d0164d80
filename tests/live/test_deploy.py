"""The deployment launcher: N daphne workers on one port (daphne --fd) with a local Redis."""

import asyncio
import json
import re
import signal
import socket
import subprocess
import urllib.request

import psutil
import pytest

from tests.support.live import ws_rpc
from tests.support.servers import (
    PYTHON,
    REPO,
    Database,
    alive,
    descendants,
    free_port,
    wait_for_port,
)

pytestmark = pytest.mark.live


@pytest.fixture
def deployment(tmp_path):
    """``scripts/deploy.py --workers 2`` on free ports; yields (port, token)."""
    database = Database(tmp_path)
    token = database.token("alice")
    port, redis_port = free_port(), free_port()
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
        stderr=subprocess.DEVNULL,
    )
    children = []
    try:
        wait_for_port(port, process=process)
        children = descendants(process.pid)
        yield port, token
    finally:
        children = children + descendants(process.pid)
        process.send_signal(signal.SIGTERM)
        process.wait(20)
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"launcher left processes behind: {alive}"


def healthz(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as response:
        return json.load(response)


async def test_launcher_serves_sessions_across_its_workers(deployment):
    """Tests that sessions created through one port work from whichever worker answers."""
    port, token = deployment
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
    leftover = alive(redis_pid)
    if leftover:  # the bug under test: do not leave it running for the next test
        psutil.Process(redis_pid).kill()
    assert result.returncode != 0
    assert not leftover, "the launcher left its redis-server running"
    assert "cannot listen on 127.0.0.1:" in stderr
