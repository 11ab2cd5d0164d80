"""
The ``terminal`` tool: run one user-approved shell command with a time limit, an output cap
and a scrubbed environment, and never leave a process behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal

logger = logging.getLogger(__name__)

TRUNCATED_MARKER = "[output truncated]"
_READ_CHUNK = 64 * 1024
# Only these variables reach the command: never API keys, DJANGO_*, OPENAI_*, REDIS_URL, HERMES_*.
_ENV_KEEP = ("PATH", "HOME", "LANG", "TZ")
_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


def scrubbed_env() -> dict[str, str]:
    """The environment a terminal command runs with: PATH, HOME, LANG, LC_* and TZ only."""
    env = {
        key: value for key, value in os.environ.items() if key in _ENV_KEEP or key.startswith("LC_")
    }
    env.setdefault("PATH", _DEFAULT_PATH)
    return env


# The timeout is the tool's own limit (a setting), not a caller-side deadline.
async def run_terminal(command: str, *, timeout: float, output_limit: int) -> str:  # noqa: ASYNC109
    """
    Run ``command`` with ``/bin/sh -c`` and return ``"exit code N\\n<output>"`` (stdout and
    stderr merged), or ``"timed out after Ns\\n<output>"``. At most ``output_limit`` bytes are
    kept; the rest is read and discarded so the command can still finish normally.
    """
    proc = await asyncio.create_subprocess_exec(
        "/bin/sh",
        "-c",
        command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=scrubbed_env(),
        # Its own process group, so a timeout or cancel kills everything the command started.
        start_new_session=True,
    )
    logger.debug("terminal pid %s: %r", proc.pid, command)
    kept = bytearray()
    truncated = False
    timed_out = False
    try:
        async with asyncio.timeout(timeout):
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
        # Also reached on cancellation. Kill the group (stragglers included), then reap.
        _kill_group(proc.pid)
        await proc.wait()

    output = kept.decode("utf-8", errors="replace")
    if truncated:
        output += f"\n{TRUNCATED_MARKER}"
    head = f"timed out after {timeout:g}s" if timed_out else f"exit code {proc.returncode}"
    return f"{head}\n{output}"


def _kill_group(pgid: int) -> None:
    # The group may already be gone (the command exited and left nothing running).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
