"""Tests for the terminal tool's bubblewrap sandbox: real commands, run as attacks on the host."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psutil
import pytest
from django.conf import settings

from gateway_app.agents import sandbox
from gateway_app.agents.sandbox import SandboxConfig, ScratchDirs
from gateway_app.agents.tools import run_terminal
from tests.support.poll import eventually

WAIT_S = 10.0
REPO = Path(settings.BASE_DIR)


@pytest.fixture
def scratch_dirs() -> Iterator[ScratchDirs]:
    """Scratch directories under a fresh root the sandbox's outer uid can traverse."""
    root = Path(tempfile.mkdtemp(prefix="hermes-sandbox-test-"))
    os.chmod(root, 0o711)
    yield ScratchDirs(root)
    shutil.rmtree(root, ignore_errors=True)


async def sh(
    dirs: ScratchDirs, command: str, session: str = "s1", limit_s: float = WAIT_S, **options
) -> str:
    """Run ``command`` in ``session``'s sandbox; returns the tool result."""
    scratch = await asyncio.to_thread(dirs.ensure, session)
    return await run_terminal(
        command,
        scratch=scratch,
        timeout=limit_s,
        output_limit=100_000,
        config=SandboxConfig(**options),
    )


def sleepers(seconds: int) -> list[psutil.Process]:
    """Host processes running ``sleep <seconds>`` (a number unique to the test)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        if proc.info["cmdline"] == ["sleep", str(seconds)]:
            if proc.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(proc)
    return found


def unique_seconds() -> int:
    return 600_000 + secrets.randbelow(100_000)


@pytest.fixture
async def loopback_server() -> AsyncIterator[tuple[int, asyncio.Queue]]:
    """A loopback TCP server; its queue gets the first line of every connection."""
    received: asyncio.Queue = asyncio.Queue()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await received.put(await reader.readline())
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1], received
    server.close()
    await server.wait_closed()


async def test_command_runs_as_uid_65534(scratch_dirs):
    """Tests that a command runs as the unprivileged uid and gid 65534."""
    assert await sh(scratch_dirs, "id -u; id -g") == "exit code 0\n65534\n65534\n"


async def test_project_directory_and_database_are_not_visible(scratch_dirs):
    """Tests that the repository and the database file do not exist inside the sandbox."""
    database = settings.DATABASES["default"]["NAME"]
    result = await sh(scratch_dirs, f"ls {REPO}; cat {database}; ls {REPO}/manage.py")
    assert result.startswith("exit code 2\n")
    assert "No such file" in result and "manage.py\n" not in result.split("\n", 1)[1]


async def test_writing_to_the_repository_fails(scratch_dirs):
    """Tests that a command cannot change the project's files."""
    urls = REPO / "hermes_site" / "urls.py"
    before = urls.read_bytes()
    result = await sh(scratch_dirs, f"echo 'import os' >> {urls} && echo written")
    assert "written" not in result
    assert urls.read_bytes() == before


async def test_proc_shows_only_the_sandbox(scratch_dirs):
    """Tests that /proc is the sandbox's own: pid 1 is the command, the gateway is absent."""
    result = await sh(scratch_dirs, "echo $$; tr '\\0' ' ' </proc/1/cmdline; echo; ls /proc")
    lines = result.split("\n")
    assert lines[1] == "1"
    assert lines[2].startswith("/bin/sh -c echo $$")
    pids = {int(name) for name in lines[3:] if name.isdigit()}
    assert os.getpid() not in pids and os.getppid() not in pids
    assert max(pids) < 10


async def test_parent_environment_is_unreadable(scratch_dirs, monkeypatch):
    """Tests that the gateway's environment (and its secrets) is not visible in /proc."""
    monkeypatch.setenv("DJANGO_SECRET_KEY", "django-very-secret")
    result = await sh(scratch_dirs, "tr '\\0' '\\n' </proc/$PPID/environ; env")
    assert "very-secret" not in result


async def test_environment_holds_no_secrets(scratch_dirs, monkeypatch):
    """Tests that only PATH, HOME, LANG and TZ reach the command, never keys or DJANGO_*."""
    monkeypatch.setenv("DJANGO_SECRET_KEY", "django-very-secret")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret")
    result = await sh(scratch_dirs, "env")
    assert "very-secret" not in result
    names = {line.split("=", 1)[0] for line in result.split("\n")[1:] if "=" in line}
    assert names <= {"PATH", "HOME", "LANG", "TZ", "PWD", "SHLVL", "_"}
    assert f"HOME={sandbox.SANDBOX_HOME}" in result


async def test_killing_the_gateway_pid_does_nothing(scratch_dirs):
    """Tests that kill -9 of the gateway's pid fails inside: that pid is not in the sandbox."""
    result = await sh(scratch_dirs, f"kill -9 {os.getpid()} {os.getppid()}; echo rc=$?")
    assert "rc=1" in result or "rc=2" in result
    assert psutil.pid_exists(os.getpid())


async def test_network_is_off_by_default(scratch_dirs, loopback_server):
    """Tests that a command cannot connect to a port listening on the host's loopback."""
    port, received = loopback_server
    # bash (for /dev/tcp) runs the check: sh is dash here.
    result = await sh(
        scratch_dirs, f"bash -c 'echo leak > /dev/tcp/127.0.0.1/{port}' && echo connected"
    )
    assert "connected" not in result
    assert received.empty()


async def test_terminal_network_shares_the_network(scratch_dirs, loopback_server):
    """Tests that with TERMINAL_NETWORK the same connection reaches the host's loopback."""
    port, received = loopback_server
    result = await sh(
        scratch_dirs,
        f"bash -c 'echo hello > /dev/tcp/127.0.0.1/{port}' && echo connected",
        network=True,
    )
    assert "connected" in result
    assert await asyncio.wait_for(received.get(), WAIT_S) == b"hello\n"


async def test_setsid_and_double_fork_survivors_are_gone(scratch_dirs):
    """Tests that processes escaping the command's session or parent die when it returns."""
    first, second = unique_seconds(), unique_seconds() + 1
    result = await sh(scratch_dirs, f"setsid -f sleep {first}; (sleep {second} &); echo started")
    assert result == "exit code 0\nstarted\n"
    assert sleepers(first) == [] and sleepers(second) == []


async def test_timeout_kills_everything_in_the_sandbox(scratch_dirs):
    """Tests that a timed-out command is killed with all it started, escapes included."""
    escaped = unique_seconds()
    result = await sh(scratch_dirs, f"setsid -f sleep {escaped}; echo started; sleep 60", limit_s=1)
    assert result == "timed out after 1s\nstarted\n"
    assert sleepers(escaped) == []


async def test_cancellation_kills_everything_in_the_sandbox(scratch_dirs):
    """Tests that cancelling the tool ends the sandbox and what escaped inside it."""
    escaped = unique_seconds()
    scratch = await asyncio.to_thread(scratch_dirs.ensure, "s1")
    fifo = scratch / "started"
    os.mkfifo(fifo)
    os.chmod(fifo, 0o666)  # created by the test, written by the sandbox's uid
    task = asyncio.create_task(
        run_terminal(
            f"setsid -f sleep {escaped}; echo started > started; exec sleep 60",
            scratch=scratch,
            timeout=60,
            output_limit=100,
            config=SandboxConfig(),
        )
    )
    # Reading the FIFO returns once the escaped process runs.
    await asyncio.wait_for(asyncio.to_thread(fifo.read_text), WAIT_S)
    # setsid -f returns before its child has exec'd sleep: wait until it shows.
    await eventually(lambda: sleepers(escaped), within=WAIT_S)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sleepers(escaped) == []


async def test_process_count_is_bounded(scratch_dirs):
    """Tests that a fork loop hits TERMINAL_MAX_PROCESSES, and its processes die after."""
    seconds = unique_seconds()
    result = await sh(
        scratch_dirs,
        f"i=0; while [ $i -lt 100 ]; do sleep {seconds} & i=$((i+1)); done; echo looped",
        max_processes=20,
    )
    assert "Cannot fork" in result and "looped" not in result
    assert sleepers(seconds) == []


async def test_file_size_is_bounded(scratch_dirs):
    """Tests that writing a file past TERMINAL_MAX_FILE_BYTES fails."""
    result = await sh(
        scratch_dirs, "head -c 3000000 /dev/zero > big; echo rc=$?", max_file_bytes=1_000_000
    )
    assert "rc=0" not in result
    assert (scratch_dirs.path("s1") / "big").stat().st_size <= 1_000_000


async def test_memory_backed_tmp_is_bounded(scratch_dirs):
    """Tests that /tmp (RAM, which RLIMIT_AS does not count) holds no more than one file's
    limit in all, so many files below the limit cannot fill the host's memory."""
    result = await sh(
        scratch_dirs,
        "for i in 1 2 3 4 5; do head -c 900000 /dev/zero > /tmp/f$i || echo full; done;"
        " du -sk /tmp",
        max_file_bytes=1_000_000,
    )
    assert "full" in result
    assert int(result.split("\n")[-2].split()[0]) <= 1_000


async def test_only_tmp_scratch_and_dev_shm_are_writable(scratch_dirs):
    """Tests that the sandbox's root and /dev (memory, unbounded) take no files."""
    result = await sh(scratch_dirs, "for d in / /dev /usr; do touch $d/x && echo wrote $d; done")
    assert "wrote" not in result


async def test_memory_is_bounded(scratch_dirs):
    """Tests that a process cannot allocate past TERMINAL_MAX_MEMORY_BYTES."""
    result = await sh(
        scratch_dirs,
        "head -c 200000000 /dev/zero | sort > /dev/null; echo rc=$?",
        max_memory_bytes=64 * 1024**2,
    )
    assert "rc=0" not in result


async def test_scratch_is_cwd_and_home_and_persists_between_commands(scratch_dirs):
    """Tests that a session's commands share its scratch dir, as cwd and as HOME."""
    assert await sh(scratch_dirs, "pwd; echo kept > $HOME/note") == (
        f"exit code 0\n{sandbox.SANDBOX_HOME}\n"
    )
    assert await sh(scratch_dirs, "cat note") == "exit code 0\nkept\n"


async def test_sessions_do_not_see_each_others_scratch(scratch_dirs):
    """Tests that another session's sandbox neither has the file nor the directory path."""
    await sh(scratch_dirs, "echo mine > note", session="s1")
    result = await sh(scratch_dirs, f"cat note; ls {scratch_dirs.path('s1')}", session="s2")
    assert "mine" not in result


def test_scratch_dir_is_private_and_removed(scratch_dirs):
    """Tests that a scratch dir is created 0700 and removed with what was left in it."""
    path = scratch_dirs.ensure("s1")
    assert path.stat().st_mode & 0o777 == 0o700
    (path / "sub").mkdir()
    (path / "sub" / "file").write_text("x")
    os.chmod(path / "sub", 0)
    scratch_dirs.remove("s1")
    assert not path.exists()


def refuse_once(monkeypatch, function: str, basename: str) -> list[str]:
    """Make ``os.<function>`` refuse the first path named ``basename`` with EACCES, as it
    does for a gateway not running as root; returns the paths refused."""
    original, refused = getattr(os, function), []

    def refusing_once(name, *args, **kwargs):
        if os.path.basename(name) == basename and not refused:
            refused.append(name)
            raise PermissionError(13, "Permission denied", name)
        return original(name, *args, **kwargs)

    monkeypatch.setattr(os, function, refusing_once)
    return refused


def test_removing_a_scratch_dir_never_changes_what_a_symlink_in_it_points_to(
    scratch_dirs, tmp_path, monkeypatch
):
    """Tests that when an entry resists deletion (as a gateway not running as root meets a
    directory a command made read-only), the retry's chmod skips symlinks: a link a command
    left to a file of the gateway must not make that file 0700."""
    target = tmp_path / "gateway-file"
    target.write_text("x")
    os.chmod(target, 0o644)
    path = scratch_dirs.ensure("s1")
    (path / "link").symlink_to(target)
    refused = refuse_once(monkeypatch, "unlink", "link")
    scratch_dirs.remove("s1")
    assert refused and not path.exists()
    assert target.stat().st_mode & 0o777 == 0o644


def test_removing_a_scratch_dir_clears_a_directory_a_command_made_unreadable(
    scratch_dirs, monkeypatch
):
    """Tests that a directory which cannot be opened (as a gateway not running as root meets
    one a command left chmod 000) is made readable and removed with what it holds."""
    path = scratch_dirs.ensure("s1")
    (path / "locked").mkdir()
    (path / "locked" / "f").write_text("x")
    refused = refuse_once(monkeypatch, "open", "locked")
    scratch_dirs.remove("s1")
    assert refused and not path.exists()


def test_missing_bubblewrap_is_reported(monkeypatch):
    """Tests that a missing bwrap binary makes the sandbox unavailable, with the reason."""
    monkeypatch.setattr(sandbox, "BWRAP_PATH", "/nonexistent/bwrap")
    reason = sandbox.unavailable_reason(SandboxConfig())
    assert reason is not None and "/nonexistent/bwrap" in reason


def test_installed_bubblewrap_is_available():
    """Tests that the probe passes on this machine (bubblewrap is installed by scripts/test)."""
    assert sandbox.unavailable_reason(SandboxConfig()) is None
