"""
Tests for the terminal tool's runner: its output contract in the sandbox, and the process
group handling of TERMINAL_SANDBOX = "none" (the sandbox itself: test_sandbox.py).
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway_app.agents import tools
from gateway_app.agents.sandbox import SandboxConfig
from gateway_app.agents.tools import TRUNCATED_MARKER
from tests.support.procs import assert_gone

WAIT_S = 5.0


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A scratch directory the sandbox's outer uid can reach."""
    root = Path(tempfile.mkdtemp(prefix="hermes-tools-test-"))
    os.chmod(root, 0o777)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["bwrap", "none"])
def run_terminal(request, scratch: Path):
    """``run_terminal`` in one mode: the contract holds sandboxed and not."""
    return functools.partial(
        tools.run_terminal, scratch=scratch, config=SandboxConfig(mode=request.param)
    )


@pytest.fixture
def run_unsandboxed(scratch: Path):
    """``run_terminal`` with TERMINAL_SANDBOX = "none": host pids are the command's."""
    return functools.partial(tools.run_terminal, scratch=scratch, config=SandboxConfig(mode="none"))


async def test_returns_exit_code_and_merged_output(run_terminal):
    """Tests that the result starts with the exit code and holds stdout and stderr."""
    result = await run_terminal("echo out; echo err >&2; exit 3", timeout=WAIT_S, output_limit=1000)
    assert result == "exit code 3\nout\nerr\n"


async def test_timeout_kills_the_command(run_unsandboxed):
    """Tests that a command running past the timeout is killed and reaped."""
    result = await run_unsandboxed("echo $$; exec sleep 30", timeout=0.5, output_limit=1000)
    head, pid, _ = result.split("\n")
    assert head == "timed out after 0.5s"
    await assert_gone([int(pid)], within=0, reaped=True)


async def test_timeout_kills_the_whole_process_group(run_unsandboxed):
    """Tests that background children of a timed-out command are killed too."""
    result = await run_unsandboxed("sleep 30 & echo $!; wait", timeout=0.5, output_limit=1000)
    assert result.startswith("timed out")
    await assert_gone([int(result.split("\n")[1])], within=WAIT_S)


async def test_leftover_background_process_is_killed_after_exit(run_unsandboxed):
    """Tests that a process the command left running is killed when the command exits."""
    result = await run_unsandboxed(
        "sleep 30 >/dev/null 2>&1 & echo $!", timeout=WAIT_S, output_limit=99
    )
    assert result.startswith("exit code 0\n")
    await assert_gone([int(result.split("\n")[1])], within=WAIT_S)


async def test_output_is_capped(run_terminal):
    """Tests that output beyond the limit is dropped and marked, and the command still ends."""
    command = "head -c 200000 /dev/zero | tr '\\0' a; echo tail"
    result = await run_terminal(command, timeout=WAIT_S, output_limit=1000)
    assert result.startswith("exit code 0\n")
    head, body, marker = result.split("\n")
    assert (head, marker) == ("exit code 0", TRUNCATED_MARKER)
    assert body == "a" * 1000


async def test_environment_is_scrubbed(run_terminal, scratch: Path, monkeypatch):
    """Tests that secrets in the gateway's environment are not visible to the command."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret")
    monkeypatch.setenv("HERMES_GATEWAY_SECRET", "hermes-secret")
    monkeypatch.setenv("REDIS_URL", "redis://secret")
    monkeypatch.setenv("LC_ALL", "C")
    result = await run_terminal("env", timeout=WAIT_S, output_limit=100_000)
    assert "secret" not in result and "LC_ALL" not in result
    assert "PATH=" in result and "HOME=" in result


async def test_unsandboxed_command_runs_in_the_scratch_dir(run_unsandboxed, scratch: Path):
    """Tests that without the sandbox the scratch dir is still the command's cwd and HOME."""
    result = await run_unsandboxed("pwd; echo $HOME", timeout=WAIT_S, output_limit=1000)
    assert result == f"exit code 0\n{scratch}\n{scratch}\n"


async def test_cancellation_kills_the_command(run_unsandboxed, scratch: Path):
    """Tests that cancelling the tool kills and reaps the running command."""
    fifo = scratch / "pid"
    os.mkfifo(fifo)
    task = asyncio.create_task(
        run_unsandboxed(f"echo $$ > {fifo}; exec sleep 30", timeout=30, output_limit=1000)
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
    await assert_gone([pid], within=0, reaped=True)
