"""Tests for SlashClient: lazy spawn, requests, the one teardown path, env scrubbing."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psutil
import pytest

from gateway_app.slash.client import SlashClient, SlashError, live_worker_pids, slash_worker_env
from tests.support.poll import eventually
from tests.support.procs import assert_gone_sync

CONTEXT: dict[str, Any] = {
    "session_id": "abc123",
    "title": "Chat",
    "status": "idle",
    "messages": [{"role": "user", "content": "hi"}],
    "skin": "default",
    "version": "0.1.0",
}

# A stand-in child for behaviours the real worker never shows. argv[1] picks the misbehaviour:
# "hang" never answers; "stubborn" answers but ignores EOF and SIGTERM; "die" exits on every
# request; "slow" answers after 0.3 s; "env" answers with its environment as JSON.
STUB = """
import json, os, signal, sys, time
mode = sys.argv[1]
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
for line in sys.stdin:
    request = json.loads(line)
    if mode == "hang":
        time.sleep(600)
    if mode == "die":
        os._exit(3)
    if mode == "slow":
        time.sleep(0.3)
    output = json.dumps(dict(os.environ)) if mode == "env" else "ok"
    print(json.dumps({"id": request["id"], "output": output, "effects": {}}), flush=True)
while mode == "stubborn":
    time.sleep(1)
"""


def stub(mode: str) -> tuple[str, ...]:
    return (sys.executable, "-c", STUB, mode)


def assert_reaped(pid: int | None) -> None:
    """Our own child must be both dead and reaped (no zombie left behind)."""
    assert pid is not None
    assert_gone_sync([pid], within=0, reaped=True)


@pytest.fixture
def fast_settings(settings: Any) -> Any:
    settings.HERMES_GATEWAY = {
        **settings.HERMES_GATEWAY,
        "SLASH_TIMEOUT_S": 5.0,
        "SLASH_CLOSE_TIMEOUT_S": 0.3,
    }
    return settings


@pytest.fixture(autouse=True)
def no_leaked_children() -> Iterator[None]:
    """Every test ends with no child process of ours left, running or zombie."""
    before = {child.pid for child in psutil.Process().children(recursive=True)}
    yield
    leaked = [c for c in psutil.Process().children(recursive=True) if c.pid not in before]
    assert not leaked, f"leaked child processes: {leaked}"


@pytest.fixture
async def client(fast_settings: Any) -> AsyncIterator[SlashClient]:
    slash = SlashClient("abc123")
    try:
        yield slash
    finally:
        await slash.close()


async def wait_for_pid(slash: SlashClient) -> int:
    """Poll until the lazily spawned child exists (spawning exposes no event to await)."""
    return await eventually(
        lambda: slash.pid, within=10, message="the slash worker was never spawned"
    )


async def test_spawns_lazily_on_first_execute(client: SlashClient) -> None:
    """Tests that no child exists before the first execute and one exists after it."""
    assert client.pid is None and not client.alive
    await client.execute("/help", CONTEXT)
    assert client.pid is not None and client.alive
    assert psutil.Process(client.pid).ppid() == os.getpid()


async def test_execute_returns_output_and_effects(client: SlashClient) -> None:
    """Tests that execute returns the worker's output with empty effects for /status."""
    result = await client.execute("/status", CONTEXT)
    assert set(result) == {"output", "effects"}
    assert "abc123" in result["output"]
    assert f"pid {client.pid}" in result["output"]
    assert result["effects"] == {}


async def test_title_and_clear_effects(client: SlashClient) -> None:
    """Tests that /title and /clear come back with their effects, on one reused child."""
    title = await client.execute("/title New name", CONTEXT)
    pid = client.pid
    assert title["effects"] == {"title": "New name"}
    assert (await client.execute("/clear", CONTEXT))["effects"] == {"clear": True}
    assert client.pid == pid


async def test_concurrent_executes_are_serialized(client: SlashClient) -> None:
    """Tests that concurrent executes each get their own reply."""
    titles = [f"t{i}" for i in range(5)]
    results = await asyncio.gather(*(client.execute(f"/title {t}", CONTEXT) for t in titles))
    assert [result["effects"]["title"] for result in results] == titles


async def test_worker_error_reply_raises_slash_error(client: SlashClient) -> None:
    """Tests that an error reply raises SlashError and leaves the child serving."""
    await client.execute("/help", CONTEXT)
    pid = client.pid
    with pytest.raises(SlashError, match="messages"):
        await client.execute("/history", {**CONTEXT, "messages": "nope"})
    assert client.pid == pid and client.alive
    assert (await client.execute("/clear", CONTEXT))["effects"] == {"clear": True}


async def test_output_is_capped_with_marker(client: SlashClient, fast_settings: Any) -> None:
    """Tests that output beyond SLASH_OUTPUT_LIMIT is cut and marked as truncated."""
    fast_settings.HERMES_GATEWAY = {**fast_settings.HERMES_GATEWAY, "SLASH_OUTPUT_LIMIT": 40}
    messages = [{"role": "user", "content": "x" * 300}]
    output = (await client.execute("/history", {**CONTEXT, "messages": messages}))["output"]
    assert output.startswith("user: xxx")
    assert output.endswith("more characters]")
    assert len(output.split("\n", 1)[0]) == 40


async def test_close_ends_process_on_eof(
    client: SlashClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Tests that close() ends the real worker via EOF within the grace time, reaped."""
    await client.execute("/help", CONTEXT)
    pid = client.pid
    with caplog.at_level(logging.INFO, logger="gateway_app.slash.client"):
        async with asyncio.timeout(0.3 * 3 + 2):
            await client.close()
    assert_reaped(pid)
    assert client.pid is None and not client.alive
    assert "exited on EOF" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_close_is_idempotent(client: SlashClient) -> None:
    """Tests that close() before any spawn, twice, and concurrently is harmless."""
    await client.close()
    await client.close()
    assert client.pid is None
    fresh = SlashClient("other")
    await fresh.execute("/help", CONTEXT)
    pid = fresh.pid
    await asyncio.gather(fresh.close(), fresh.close())
    await fresh.close()
    assert_reaped(pid)


async def test_execute_after_close_raises(client: SlashClient) -> None:
    """Tests that a closed client refuses further commands instead of respawning."""
    await client.execute("/help", CONTEXT)
    await client.close()
    with pytest.raises(SlashError, match="closed"):
        await client.execute("/help", CONTEXT)
    assert client.pid is None


async def test_close_escalates_to_kill(
    client: SlashClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Tests that close() kills a child that ignores both EOF and SIGTERM, and reaps it."""
    client.command = stub("stubborn")
    assert (await client.execute("/help", CONTEXT))["output"] == "ok"
    pid = client.pid
    with caplog.at_level(logging.INFO, logger="gateway_app.slash.client"):
        async with asyncio.timeout(0.3 * 3 + 2):
            await client.close()
    assert_reaped(pid)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("killed" in message for message in warnings)


async def test_close_aborts_inflight_execute(client: SlashClient) -> None:
    """Tests that close() during a running command aborts it with SlashError."""
    client.command = stub("hang")
    task = asyncio.create_task(client.execute("/help", CONTEXT))
    pid = await wait_for_pid(client)
    await client.close()
    with pytest.raises(SlashError):
        await asyncio.wait_for(task, 5)
    assert_reaped(pid)


async def test_close_during_spawn_leaves_no_process(client: SlashClient) -> None:
    """Tests that close() racing the lazy spawn waits for the child and ends it."""
    task = asyncio.create_task(client.execute("/help", CONTEXT))
    await asyncio.sleep(0)  # let execute start spawning
    await client.close()
    assert client.pid is None
    with pytest.raises(SlashError, match="closed"):
        await task


async def test_timeout_kills_worker_and_next_execute_respawns(
    client: SlashClient, fast_settings: Any
) -> None:
    """Tests that a command over SLASH_TIMEOUT_S kills the child and the next call respawns."""
    fast_settings.HERMES_GATEWAY = {**fast_settings.HERMES_GATEWAY, "SLASH_TIMEOUT_S": 0.5}
    client.command = stub("hang")
    with pytest.raises(SlashError, match=r"timed out after 0\.5s"):
        await client.execute("/help", CONTEXT)
    assert client.pid is None
    del client.command  # back to the real worker
    result = await client.execute("/clear", CONTEXT)
    assert result["effects"] == {"clear": True}


async def test_timeout_teardown_leaves_no_process(fast_settings: Any) -> None:
    """Tests that the child killed for a timeout is dead and reaped when SlashError surfaces."""
    fast_settings.HERMES_GATEWAY = {**fast_settings.HERMES_GATEWAY, "SLASH_TIMEOUT_S": 0.5}
    slash = SlashClient("t")
    slash.command = stub("hang")
    task = asyncio.create_task(slash.execute("/help", CONTEXT))
    pid = await wait_for_pid(slash)
    with pytest.raises(SlashError):
        await task
    assert_reaped(pid)
    await slash.close()


async def test_cancelled_execute_leaves_stale_reply_skipped(
    client: SlashClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Tests that after a cancelled execute the next call skips the stale reply for its own."""
    client.command = stub("slow")
    task = asyncio.create_task(client.execute("/help", CONTEXT))
    pid = await wait_for_pid(client)  # the request is written by the time the pid shows
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with caplog.at_level(logging.DEBUG, logger="gateway_app.slash.client"):
        assert (await client.execute("/help", CONTEXT))["output"] == "ok"
    assert client.pid == pid
    assert "skipping stale reply" in caplog.text


async def test_respawns_after_child_death(client: SlashClient) -> None:
    """Tests that a child killed between commands is replaced transparently."""
    await client.execute("/help", CONTEXT)
    first = client.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    result = await client.execute("/title again", CONTEXT)
    assert result["effects"] == {"title": "again"}
    assert client.pid not in (None, first)
    assert_reaped(first)


async def test_gives_up_when_child_dies_twice(client: SlashClient) -> None:
    """Tests that a child dying on the command itself is respawned once, then SlashError."""
    client.command = stub("die")
    with pytest.raises(SlashError, match="died"):
        await client.execute("/help", CONTEXT)
    assert client.pid is None


async def test_child_environment_is_scrubbed(
    client: SlashClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tests that secrets in the gateway's environment never reach the child."""
    secrets = {
        "OPENAI_API_KEY": "sk-test",
        "DJANGO_SECRET_KEY": "x",
        "HERMES_GATEWAY_TOKEN": "x",
        "REDIS_URL": "redis://:pw@host",
        "DB_PASSWORD": "x",
        "AWS_SESSION_TOKEN": "x",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    client.command = stub("env")
    env = json.loads((await client.execute("/help", CONTEXT))["output"])
    assert not set(secrets) & set(env)
    assert env["PATH"] == os.environ["PATH"]
    assert env["LC_ALL"] == "C.UTF-8"


def test_slash_worker_env_keeps_only_basics() -> None:
    """Tests that slash_worker_env keeps allowlisted basics and drops secret-looking names."""
    source = {
        "PATH": "/bin",
        "HOME": "/root",
        "LANG": "C",
        "LC_CTYPE": "C",
        "TZ": "UTC",
        "PYTHONPATH": "/x",
        "LC_API_KEY": "x",
        "OPENAI_BASE_URL": "x",
        "HERMES_X": "x",
        "SOMETHING_ELSE": "x",
        "GITHUB_TOKEN": "x",
    }
    assert slash_worker_env(source) == {
        "PATH": "/bin",
        "HOME": "/root",
        "LANG": "C",
        "LC_CTYPE": "C",
        "TZ": "UTC",
        "PYTHONPATH": "/x",
    }


async def test_live_worker_pids_tracks_live_children(fast_settings: Any) -> None:
    """Tests that live_worker_pids lists each client's live child until it is closed."""
    first, second = SlashClient("one"), SlashClient("two")
    try:
        assert first.pid is None
        await asyncio.gather(first.execute("/help", CONTEXT), second.execute("/help", CONTEXT))
        first_pid, second_pid = first.pid, second.pid
        assert first_pid is not None and second_pid is not None
        pids = {first_pid, second_pid}
        assert pids <= live_worker_pids()
        await first.close()
        assert first_pid not in live_worker_pids()
        assert second_pid in live_worker_pids()
    finally:
        await first.close()
        await second.close()
    assert not pids & live_worker_pids()
    for pid in pids:
        assert_reaped(pid)


async def test_oversized_reply_drops_worker(
    client: SlashClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tests that a reply line over the read limit raises SlashError and replaces the child."""
    monkeypatch.setattr("gateway_app.slash.client.READ_LIMIT", 1024)
    messages = [{"role": "user", "content": "x" * 400}] * 20
    await client.execute("/help", CONTEXT)
    first = client.pid
    with pytest.raises(SlashError, match="too large"):
        await client.execute("/history", {**CONTEXT, "messages": messages})
    assert client.pid is None
    assert_reaped(first)
    assert (await client.execute("/clear", CONTEXT))["effects"] == {"clear": True}
