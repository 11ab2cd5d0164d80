"""
Parent side of a session's slash worker: the only code that touches that subprocess.

The child is spawned lazily on the first command, fed one JSON line per request (serialized by a
lock), and torn down by exactly one path: stdin EOF, then SIGTERM, then SIGKILL, each followed by
a bounded wait, and always a final ``wait()`` so no zombie or open pipe is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import sys
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway_app.adapters.asyncio_subprocess import close_transport
from gateway_app.conf import setting
from gateway_app.slash.installed import command_modules

logger = logging.getLogger(__name__)

#: The directory holding ``gateway_app``, so ``python -m gateway_app.slash.worker`` imports.
BASE_DIR = Path(__file__).resolve().parents[2]
#: StreamReader limit for one reply line; larger replies are a protocol error.
READ_LIMIT = 4 * 1024 * 1024

# The child gets only these variables (plus LC_*), so provider keys and Django secrets in the
# gateway's environment never reach a process that runs user-supplied commands.
_ENV_ALLOW = frozenset(
    {"PATH", "HOME", "LANG", "LANGUAGE", "PYTHONPATH", "TZ", "TMPDIR", "TEMP", "TMP"}
    | {"SYSTEMROOT", "SYSTEMDRIVE", "COMSPEC", "PATHEXT", "WINDIR"}
)
_ENV_DENY = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|^DJANGO_|^OPENAI_|^HERMES_|^REDIS_URL$")

_clients: weakref.WeakSet[SlashClient] = weakref.WeakSet()


class SlashError(Exception):
    """A slash command could not be executed (timeout, worker failure, bad request)."""


class _WorkerGone(Exception):
    """The child closed its pipes or refused our write: it died under us."""


def slash_worker_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The slash worker's whole environment: an allowlist of basics, minus anything
    secret-looking (the one policy for what of the gateway's environment the child sees)."""
    source = os.environ if environ is None else environ
    return {
        name: value
        for name, value in source.items()
        if (name in _ENV_ALLOW or name.startswith("LC_")) and not _ENV_DENY.search(name.upper())
    }


def slash_worker_path() -> str:
    """The gateway's import path as the worker's ``PYTHONPATH``: the worker then imports the
    SLASH_COMMANDS modules from where the gateway did (a host project's directory too)."""
    return os.pathsep.join(os.path.abspath(entry or os.curdir) for entry in sys.path)


def live_worker_pids() -> set[int]:
    """Return the pids of every live slash worker owned by this process."""
    return {pid for client in list(_clients) if (pid := client.pid) is not None and client.alive}


@dataclass(eq=False)
class _Worker:
    proc: asyncio.subprocess.Process
    teardown: asyncio.Task[None] | None = None


class SlashClient:
    """One session's slash worker: lazy spawn, one request at a time, one teardown path."""

    #: argv of the child (the ``SLASH_COMMANDS`` modules follow it); a seam so tests can
    #: substitute a misbehaving child.
    command: tuple[str, ...] = (sys.executable, "-m", "gateway_app.slash.worker")

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self._worker: _Worker | None = None
        self._lock = asyncio.Lock()
        self._closed = False
        self._spawning: asyncio.Future[_Worker] | None = None
        self._next_id = 0
        _clients.add(self)

    def __repr__(self) -> str:
        return f"<SlashClient session={self.session_id} pid={self.pid}>"

    @property
    def pid(self) -> int | None:
        return self._worker.proc.pid if self._worker is not None else None

    @property
    def alive(self) -> bool:
        return self._worker is not None and self._worker.proc.returncode is None

    ### Requests ###

    async def execute(self, command: str, context: dict[str, Any]) -> dict[str, Any]:
        """Run one slash command; return ``{"output", "effects"}`` or raise :class:`SlashError`.

        A child found dead is respawned once, transparently. A command that outlives
        ``SLASH_TIMEOUT_S`` kills the child; the next call starts a fresh one.
        """
        timeout = setting("SLASH_TIMEOUT_S")
        async with self._lock:
            for attempt in (1, 2):
                worker = await self._ensure_worker()
                self._next_id += 1
                request_id = self._next_id
                request = {"id": request_id, "command": command, "context": context}
                try:
                    line = json.dumps(request, default=str)
                except (TypeError, ValueError) as exc:
                    raise SlashError(f"slash request is not serializable: {exc}") from exc
                try:
                    reply = await asyncio.wait_for(
                        self._roundtrip(worker, request_id, line), timeout
                    )
                except TimeoutError:
                    await self._stop(worker, reason="timeout")
                    raise SlashError(f"slash command timed out after {timeout:g}s") from None
                except _WorkerGone:
                    await self._stop(worker, reason="died")
                    if self._closed:
                        raise SlashError("slash worker was closed") from None
                    if attempt == 2:
                        raise SlashError("slash worker died while running the command") from None
                    logger.warning("slash worker for session %s died; respawning", self.session_id)
                    continue
                if self._closed:
                    raise SlashError("slash worker was closed")
                return self._result(reply)
        raise AssertionError("unreachable")

    async def _ensure_worker(self) -> _Worker:
        if self._closed:
            raise SlashError("slash worker is closed")
        if self._worker is not None:
            return self._worker
        # Shielded so a cancelled caller cannot orphan a half-spawned child; close() awaits it.
        self._spawning = asyncio.ensure_future(self._spawn())
        worker = await asyncio.shield(self._spawning)
        if self._closed:  # close() ran while we were spawning
            await self._stop(worker, reason="closed during spawn")
            raise SlashError("slash worker is closed")
        return worker

    async def _spawn(self) -> _Worker:
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.command,
                *command_modules(),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
                cwd=BASE_DIR,
                env={**slash_worker_env(), "PYTHONPATH": slash_worker_path()},
                limit=READ_LIMIT,
            )
        except OSError as exc:
            raise SlashError(f"cannot start slash worker: {exc}") from exc
        finally:
            self._spawning = None
        worker = self._worker = _Worker(proc)
        logger.info("slash worker started: session=%s pid=%s", self.session_id, proc.pid)
        return worker

    async def _roundtrip(self, worker: _Worker, request_id: int, line: str) -> dict[str, Any]:
        proc = worker.proc
        assert proc.stdin is not None and proc.stdout is not None
        if proc.returncode is not None or proc.stdin.is_closing():
            raise _WorkerGone
        try:
            proc.stdin.write(line.encode("utf-8", errors="replace") + b"\n")
            await proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise _WorkerGone from exc
        logger.debug("slash request %s -> pid %s: %.200s", request_id, proc.pid, line)
        while True:
            try:
                raw = await proc.stdout.readline()
            except (ValueError, asyncio.LimitOverrunError):
                # The rest of the oversized line would desync the stream: drop this child.
                await self._stop(worker, reason="reply too large")
                raise SlashError("slash worker reply too large") from None
            if not raw:
                raise _WorkerGone
            try:
                reply = json.loads(raw)
            except ValueError:
                await self._stop(worker, reason="protocol error")
                raise SlashError("slash worker sent an invalid reply") from None
            if isinstance(reply, dict) and reply.get("id") == request_id:
                return reply
            logger.debug("slash worker pid %s: skipping stale reply %.200r", proc.pid, raw)

    @staticmethod
    def _result(reply: dict[str, Any]) -> dict[str, Any]:
        if "error" in reply:
            raise SlashError(str(reply["error"]))
        output = str(reply.get("output", ""))
        limit = setting("SLASH_OUTPUT_LIMIT")
        if len(output) > limit:
            dropped = len(output) - limit
            output = f"{output[:limit]}\n… [output truncated: {dropped} more characters]"
        effects = reply.get("effects")
        return {"output": output, "effects": dict(effects) if isinstance(effects, dict) else {}}

    ### Teardown ###

    async def close(self) -> None:
        """Stop the worker for good; idempotent, and aborts an in-flight :meth:`execute`."""
        self._closed = True
        if self._spawning is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._spawning)
        if self._worker is not None:
            await self._stop(self._worker, reason="close")

    async def _stop(self, worker: _Worker, *, reason: str) -> None:
        # One teardown task per child, shielded: concurrent callers share it, and a cancelled
        # caller cannot abandon the child half-closed.
        if worker.teardown is None:
            worker.teardown = asyncio.ensure_future(self._teardown(worker, reason))
        await asyncio.shield(worker.teardown)

    async def _teardown(self, worker: _Worker, reason: str) -> None:
        proc = worker.proc
        grace = setting("SLASH_CLOSE_TIMEOUT_S")
        how = "exited on EOF"
        try:
            if proc.stdin is not None and not proc.stdin.is_closing():
                proc.stdin.close()
            if not await self._wait(proc, grace):
                how = "terminated"
                self._signal(proc, "terminate")
                if not await self._wait(proc, grace):
                    how = "killed"
                    self._signal(proc, "kill")
                    if not await self._wait(proc, grace):
                        # Only a descendant holding our pipes open gets here: closing the
                        # transport drops the pipes so wait() can finish.
                        close_transport(proc)
                        await proc.wait()
        finally:
            close_transport(proc)
            if self._worker is worker:
                self._worker = None
        log = logger.info if how == "exited on EOF" else logger.warning
        log(
            "slash worker %s (%s): session=%s pid=%s returncode=%s",
            how,
            reason,
            self.session_id,
            proc.pid,
            proc.returncode,
        )

    @staticmethod
    async def _wait(proc: asyncio.subprocess.Process, grace: float) -> bool:
        try:
            async with asyncio.timeout(grace):
                await proc.wait()
        except TimeoutError:
            return False
        return True

    @staticmethod
    def _signal(proc: asyncio.subprocess.Process, how: str) -> None:
        try:
            if how == "terminate":
                proc.terminate()
            else:
                proc.kill()
        except ProcessLookupError:
            pass  # exited between our wait and the signal
