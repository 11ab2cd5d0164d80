"""Tests for the terminal tool."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import psutil

from gateway_app.agents.tools import TRUNCATED_MARKER, run_terminal

WAIT_S = 5.0


def assert_dead(pid: int) -> None:
    """Wait briefly until ``pid`` is gone or a zombie (killed, awaiting its new parent's reap)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        assert time.monotonic() < deadline, f"pid {pid} still running"
        time.sleep(0.01)


async def test_returns_exit_code_and_merged_output():
    """Tests that the result starts with the exit code and holds stdout and stderr."""
    result = await run_terminal("echo out; echo err >&2; exit 3", timeout=WAIT_S, output_limit=1000)
    assert result == "exit code 3\nout\nerr\n"


async def test_timeout_kills_the_command():
    """Tests that a command running past the timeout is killed and reaped."""
    result = await run_terminal("echo $$; exec sleep 30", timeout=0.5, output_limit=1000)
    head, pid, _ = result.split("\n")
    assert head == "timed out after 0.5s"
    assert not psutil.pid_exists(int(pid))


async def test_timeout_kills_the_whole_process_group():
    """Tests that background children of a timed-out command are killed too."""
    result = await run_terminal("sleep 30 & echo $!; wait", timeout=0.5, output_limit=1000)
    assert result.startswith("timed out")
    await asyncio.to_thread(assert_dead, int(result.split("\n")[1]))


async def test_leftover_background_process_is_killed_after_exit():
    """Tests that a process the command left running is killed when the command exits."""
    result = await run_terminal(
        "sleep 30 >/dev/null 2>&1 & echo $!", timeout=WAIT_S, output_limit=99
    )
    assert result.startswith("exit code 0\n")
    await asyncio.to_thread(assert_dead, int(result.split("\n")[1]))


async def test_output_is_capped():
    """Tests that output beyond the limit is dropped and marked, and the command still ends."""
    command = "head -c 200000 /dev/zero | tr '\\0' a; echo tail"
    result = await run_terminal(command, timeout=WAIT_S, output_limit=1000)
    assert result.startswith("exit code 0\n")
    head, body, marker = result.split("\n")
    assert (head, marker) == ("exit code 0", TRUNCATED_MARKER)
    assert body == "a" * 1000


async def test_environment_is_scrubbed(monkeypatch):
    """Tests that secrets in the gateway's environment are not visible to the command."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret")
    monkeypatch.setenv("HERMES_GATEWAY_SECRET", "hermes-secret")
    monkeypatch.setenv("REDIS_URL", "redis://secret")
    monkeypatch.setenv("LC_ALL", "C")
    result = await run_terminal("env", timeout=WAIT_S, output_limit=100_000)
    assert "secret" not in result
    assert "PATH=" in result and "LC_ALL=C" in result


async def test_cancellation_kills_the_command(tmp_path: Path):
    """Tests that cancelling the tool kills and reaps the running command."""
    fifo = tmp_path / "pid"
    os.mkfifo(fifo)
    task = asyncio.create_task(
        run_terminal(f"echo $$ > {fifo}; exec sleep 30", timeout=30, output_limit=1000)
    )
    # Reading the FIFO returns once the command has written its pid.
    pid = int(await asyncio.wait_for(asyncio.to_thread(fifo.read_text), WAIT_S))
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    else:
        raise AssertionError("the cancellation was swallowed")
    assert not psutil.pid_exists(pid)
