"""
The terminal tool's runner: run one user-approved shell command in the sandbox (``sandbox.py``)
with a time limit, an output cap and rlimits, and never leave a process behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from pathlib import Path

from .. import sandbox
from ..sandbox import SandboxConfig

logger = logging.getLogger(__name__)

TRUNCATED_MARKER = "[output truncated]"
_READ_CHUNK = 64 * 1024


# The timeout is the tool's own limit (a setting), not a caller-side deadline.
async def run_terminal(
    command: str,
    *,
    scratch: Path,
    timeout: float,  # noqa: ASYNC109
    output_limit: int,
    config: SandboxConfig,
) -> str:
    """
    Run ``command`` with ``/bin/sh -c`` in ``scratch`` (cwd and HOME) and return
    ``"exit code N\\n<output>"`` (stdout and stderr merged), or ``"timed out after Ns\\n<output>"``.
    At most ``output_limit`` bytes are kept; the rest is read and discarded.
    """
    read_fd, write_fd = os.pipe() if config.mode == "bwrap" else (-1, -1)
    try:
        proc = await _spawn(command, scratch, config, write_fd)
    finally:
        if write_fd >= 0:
            os.close(write_fd)
    logger.debug("terminal pid %s: %r", proc.pid, command)
    init = None
    kept = bytearray()
    truncated = False
    timed_out = False
    try:
        async with asyncio.timeout(timeout):
            if read_fd >= 0:
                init = await _sandbox_init(read_fd, proc.pid)
            assert proc.stdout is not None
            while chunk := await proc.stdout.read(_READ_CHUNK):
                room = output_limit - len(kept)
                if len(chunk) > room:
                    truncated = True
                kept += chunk[: max(room, 0)]
            await proc.wait()
    except TimeoutError:
        timed_out = True
        logger.warning("terminal pid %s timed out after %ss: %r", proc.pid, timeout, command)
    finally:
        # Also reached on cancellation: kill everything, then wait until it is really gone.
        if read_fd >= 0:
            os.close(read_fd)
        await _end(proc, init)

    output = kept.decode("utf-8", errors="replace")
    if truncated:
        output += f"\n{TRUNCATED_MARKER}"
    head = f"timed out after {timeout:g}s" if timed_out else f"exit code {proc.returncode}"
    return f"{head}\n{output}"


async def _spawn(
    command: str, scratch: Path, config: SandboxConfig, info_fd: int
) -> asyncio.subprocess.Process:
    limits = sandbox.rlimit_argv(config)
    if config.mode == "bwrap":
        argv = [*limits, *sandbox.bwrap_argv(command, scratch, config, info_fd)]
        extra = {"pass_fds": (info_fd,), **sandbox.outer_identity()}
        env = sandbox.command_env("/")
    else:
        # TERMINAL_SANDBOX = "none" (an explicit operator choice, warned about by W010).
        argv = [*limits, "/bin/sh", "-c", command]
        extra = {"cwd": scratch}
        env = sandbox.command_env(str(scratch))
    return await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
        # Its own process group, so a timeout or cancel kills everything outside a sandbox.
        start_new_session=True,
        **extra,
    )


async def _sandbox_init(read_fd: int, bwrap_pid: int) -> int | None:
    """A pidfd of the sandbox's pid 1, from bwrap's --info-fd (None if bwrap failed first)."""
    raw = await _read_to_eof(read_fd)
    try:
        pid = int(json.loads(raw)["child-pid"])
        pidfd = os.pidfd_open(pid)
    except (ValueError, KeyError, TypeError, OSError):
        return None
    # bwrap has not reaped its child while it is still its parent: then the pidfd is that child.
    if _parent_of(pid) != bwrap_pid:
        os.close(pidfd)
        return None
    return pidfd


async def _read_to_eof(fd: int) -> bytes:
    """Everything bwrap writes to its info pipe (it closes it once the sandbox exists)."""
    os.set_blocking(fd, False)
    loop = asyncio.get_running_loop()
    data = bytearray()
    eof = loop.create_future()

    def readable() -> None:
        try:
            chunk = os.read(fd, _READ_CHUNK)
        except BlockingIOError:
            return
        data.extend(chunk)
        if not chunk and not eof.done():
            eof.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await eof
    finally:
        loop.remove_reader(fd)
    return bytes(data)


def _parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat_file:
            # The command name (field 2) is parenthesized and may hold spaces.
            return int(stat_file.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


async def _end(proc: asyncio.subprocess.Process, init: int | None) -> None:
    """Kill the command and all it started, then wait for the sandbox's pid namespace to end."""
    if init is not None:
        # Its pid 1 dying makes the kernel kill the whole pid namespace.
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(init, signal.SIGKILL)
    _kill_group(proc.pid)
    await proc.wait()
    if init is not None:
        try:
            await _pidfd_exited(init)
        finally:
            os.close(init)


async def _pidfd_exited(pidfd: int) -> None:
    """Wait until the process is gone; a pid 1 is gone only after its whole namespace."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.add_reader(pidfd, lambda: done.done() or done.set_result(None))
    try:
        await done
    finally:
        loop.remove_reader(pidfd)


def _kill_group(pgid: int) -> None:
    # The group may already be gone (the command exited and left nothing running).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
