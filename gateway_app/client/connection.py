"""
Transports of the client library. A *dialer* opens one *link* (a WebSocket, or a spawned
``gateway_stdio`` process) and checks its first frame is ``gateway.ready``; the client redials
through the same dialer when a link drops, waiting ``Backoff`` delays between failed attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import (
    CLOSE_FORBIDDEN,
    CLOSE_TOO_MANY_CONNECTIONS,
    AuthenticationFailed,
    ClientConnectionError,
    ProtocolError,
)

logger = logging.getLogger(__name__)

#: Largest frame accepted from the gateway: its own limit is 1 MiB by default.
MAX_INCOMING_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Backoff:
    """
    Capped exponential delays between failed connection attempts: ``initial`` seconds, times
    ``factor`` per failure up to ``maximum``; ``max_attempts`` failures in a row give up (None:
    never).
    """

    initial: float = 0.25
    maximum: float = 10.0
    factor: float = 2.0
    max_attempts: int | None = 12

    def delay(self, failures: int) -> float:
        """The wait after the ``failures``-th failed attempt in a row (from 1)."""
        return min(self.maximum, self.initial * self.factor ** max(failures - 1, 0))


class LinkClosed(Exception):
    """The link ended; ``code`` is the WebSocket close code received, if any."""

    def __init__(self, reason: str, code: int | None = None):
        super().__init__(reason)
        self.code = code


class DialError(Exception):
    """One connection attempt failed; ``retry`` says whether another attempt may succeed."""

    def __init__(self, error: Exception, *, retry: bool):
        super().__init__(str(error))
        self.error = error
        self.retry = retry


class Link(Protocol):
    """One open connection to the gateway, past its ``gateway.ready`` frame."""

    ready: dict[str, Any]

    async def send(self, text: str) -> None: ...

    async def recv(self) -> str: ...

    async def close(self) -> None: ...

    def abort(self) -> None: ...


class Dialer(Protocol):
    async def __call__(self) -> Link: ...


def _ready_params(text: str | bytes) -> dict[str, Any]:
    """The params of a ``gateway.ready`` frame, or ProtocolError for anything else."""
    try:
        message = json.loads(text)
        params = message["params"]
        if message.get("method") == "event" and params.get("type") == "gateway.ready":
            return params
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    raise ProtocolError(f"expected gateway.ready first, got {str(text)[:200]!r}")


class WebSocketLink:
    """A ``websockets`` connection to ``/api/ws``."""

    def __init__(self, websocket: Any, ready: dict[str, Any]):
        self.websocket = websocket
        self.ready = ready

    @property
    def transport(self) -> asyncio.Transport:
        """The TCP transport underneath (``abort()`` it to drop the link as a network would)."""
        return self.websocket.transport

    async def send(self, text: str) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            await self.websocket.send(text)
        except ConnectionClosed as exc:
            raise _closed(exc) from exc

    async def recv(self) -> str:
        from websockets.exceptions import ConnectionClosed

        try:
            data = await self.websocket.recv()
        except ConnectionClosed as exc:
            raise _closed(exc) from exc
        return data if isinstance(data, str) else data.decode("utf-8", "replace")

    async def close(self) -> None:
        await self.websocket.close()

    def abort(self) -> None:
        self.transport.abort()


def _closed(exc: Any) -> LinkClosed:
    received = getattr(exc, "rcvd", None)
    if received is None:
        return LinkClosed("connection dropped")
    return LinkClosed(f"closed with code {received.code} {received.reason}".strip(), received.code)


class WebSocketDialer:
    """Opens WebSocket links to ``url``, sending ``token`` as ``Authorization: Bearer``."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        open_timeout: float = 10.0,
    ):
        self.url = url
        self.headers = dict(headers or {})
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.open_timeout = open_timeout

    async def __call__(self) -> WebSocketLink:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

        try:
            websocket = await connect(
                self.url,
                additional_headers=self.headers,
                max_size=MAX_INCOMING_BYTES,
                open_timeout=self.open_timeout,
                proxy=None,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                raise DialError(
                    AuthenticationFailed(f"refused: HTTP {status}"), retry=False
                ) from exc
            raise DialError(ClientConnectionError(f"HTTP {status}"), retry=True) from exc
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            raise DialError(ClientConnectionError(f"cannot connect: {exc}"), retry=True) from exc
        try:
            first = await asyncio.wait_for(websocket.recv(), self.open_timeout)
        except ConnectionClosed as exc:
            closed = _closed(exc)
            if closed.code == CLOSE_FORBIDDEN:
                raise DialError(AuthenticationFailed(str(closed)), retry=False) from exc
            if closed.code == CLOSE_TOO_MANY_CONNECTIONS:
                reason = "too many connections open (4029)"
                raise DialError(ClientConnectionError(reason), retry=True) from exc
            raise DialError(ClientConnectionError(str(closed)), retry=True) from exc
        except TimeoutError as exc:
            await websocket.close()
            raise DialError(ClientConnectionError("no gateway.ready"), retry=True) from exc
        try:
            ready = _ready_params(first)
        except ProtocolError as exc:
            await websocket.close()
            raise DialError(exc, retry=False) from exc
        return WebSocketLink(websocket, ready)


class StdioLink:
    """A spawned ``manage.py gateway_stdio``: one JSON message per line each way."""

    def __init__(self, process: asyncio.subprocess.Process, ready: dict[str, Any]):
        self.process = process
        self.ready = ready
        #: Seconds ``close()`` waits for the process to exit after EOF before killing it.
        self.close_timeout = 10.0

    async def send(self, text: str) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        try:
            stdin.write(text.encode() + b"\n")
            await stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise LinkClosed("gateway_stdio stopped reading") from exc

    async def recv(self) -> str:
        assert self.process.stdout is not None
        line = await self.process.stdout.readline()
        if not line:
            code = await self.process.wait()
            raise LinkClosed(f"gateway_stdio exited with code {code}")
        return line.decode("utf-8", "replace")

    async def close(self) -> None:
        """EOF on its stdin (it finishes its sessions and exits), a kill if it lingers."""
        if self.process.stdin is not None and not self.process.stdin.is_closing():
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), self.close_timeout)
        except TimeoutError:
            self.abort()
            await self.process.wait()

    def abort(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()


class StdioDialer:
    """Spawns ``argv`` (e.g. ``python manage.py gateway_stdio --user alice``) per link."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stderr: int | Any = subprocess.DEVNULL,
        ready_timeout: float = 60.0,
    ):
        self.argv = list(argv)
        self.cwd = cwd
        self.env = dict(env) if env is not None else None
        self.stderr = stderr
        self.ready_timeout = ready_timeout

    async def __call__(self) -> StdioLink:
        try:
            process = await asyncio.create_subprocess_exec(
                *self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self.stderr,
                limit=MAX_INCOMING_BYTES,
            )
        except OSError as exc:
            raise DialError(ClientConnectionError(f"cannot start: {exc}"), retry=False) from exc
        link = StdioLink(process, {})
        try:
            first = await asyncio.wait_for(link.recv(), self.ready_timeout)
            link.ready = _ready_params(first)
        except (LinkClosed, ProtocolError, TimeoutError) as exc:
            # A command that fails before it serves (a bad --user) fails the same way again.
            link.close_timeout = 2.0
            await link.close()
            raise DialError(ClientConnectionError(f"{self.argv[0]}: {exc}"), retry=False) from exc
        return link
