"""
What the gateway needs from daphne beyond ASGI: the bytes its Twisted transport holds unsent
for a connection (daphne's ``send`` returns at once and Twisted buffers without bound), and its
Server class, whose action logger (the access log) the gateway wraps. Daphne is imported only
where a server is built: importing ``daphne.server`` installs its Twisted reactor.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import os
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..transport.access_log import redact_path
from ..transport.proxy import trust_address_header

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from ..transport.limits import BufferProbe

#: Daphne's action logger: ``(protocol, action, details)``, ``details["path"]`` the request's.
ActionLogger = Callable[[Any, str, dict[str, Any]], None]

#: How deep the search behind ``send`` goes (middleware wrappers, then daphne's partial).
PROBE_DEPTH = 6


### The write buffer behind send ###


def server_buffer_probe(send: Callable[..., Any], depth: int = PROBE_DEPTH) -> BufferProbe | None:
    """
    Find the transport behind an ASGI ``send`` and return a probe of its unsent bytes, or
    ``None`` when there is none (a test communicator). Daphne's ``send`` is
    ``partial(Server.handle_reply, protocol)``, possibly behind channels' middleware wrappers;
    uvicorn's is a bound method of its protocol, whose asyncio transport reports its buffer.
    """
    seen: set[int] = set()
    stack: list[tuple[Any, int]] = [(send, 0)]
    while stack:
        obj, level = stack.pop()
        if id(obj) in seen or level > depth:
            continue
        seen.add(id(obj))
        probe = transport_probe(getattr(obj, "transport", None))
        if probe is not None:
            return probe
        if isinstance(obj, functools.partial):
            stack.append((obj.func, level + 1))
            stack.extend((arg, level + 1) for arg in obj.args)
        elif inspect.ismethod(obj):
            stack.append((obj.__self__, level + 1))
        elif hasattr(obj, "__dict__") and not isinstance(obj, type):
            stack.extend((value, level + 1) for value in vars(obj).values() if callable(value))
    return None


def transport_probe(transport: Any) -> BufferProbe | None:
    """A probe of ``transport``'s unsent bytes: a Twisted ``FileDescriptor`` (daphne's TCP
    transport), an asyncio transport, or the one a TLS transport wraps; else ``None``."""
    if transport is None:
        return None
    if all(hasattr(transport, name) for name in ("dataBuffer", "offset", "_tempDataLen")):
        # twisted.internet.abstract.FileDescriptor: the unwritten rest of dataBuffer, plus
        # what write() appended since the last doWrite (_tempDataBuffer, counted apart).
        def twisted_buffered() -> int:
            return len(transport.dataBuffer) - transport.offset + transport._tempDataLen

        return twisted_buffered
    size = getattr(transport, "get_write_buffer_size", None)
    if callable(size):
        return size
    inner = getattr(transport, "transport", None)
    return transport_probe(inner) if inner is not transport else None


### Readiness ###

#: A launcher (scripts/deploy.py) passes the write end of a pipe here; "1" on it means serving.
READY_FD_ENV = "HERMES_READY_FD"


async def start_host_then_notify_ready() -> None:
    """
    Start this worker's session host, then tell the launcher it serves: the first resume a
    rolling restart sends here finds the host running (its channel, heartbeat, database
    connection) instead of starting it while the client waits.
    """
    from ..sessions.host import get_host

    try:
        await get_host()
    except Exception:
        # Started again on first use, as without this; the launcher must not wait for it.
        logger.exception("could not start the session host before serving")
    notify_ready()


def notify_ready() -> None:
    """Tell the launcher this worker serves, so a rolling restart may drain the old one."""
    fd = os.environ.pop(READY_FD_ENV, "")
    if not fd.isdigit():
        return
    try:
        os.write(int(fd), b"1")
        os.close(int(fd))
    except OSError:
        pass  # the launcher went away or does not wait


### The access log ###


def redacting(action_logger: ActionLogger) -> ActionLogger:
    """Wrap a daphne action logger so that the paths it is given are redacted first."""

    def log_action(protocol: Any, action: str, details: dict[str, Any]) -> None:
        path = details.get("path")
        if isinstance(path, str):
            details = {**details, "path": redact_path(path)}
        action_logger(protocol, action, details)

    return log_action


#: Registered close codes an application may send beyond autobahn's 1000 and 3000-4999:
#: 1012 (service restart) tells clients of a draining worker to reconnect at once.
SERVER_CLOSE_CODES = frozenset({1012})
#: How long a drained worker waits for the HTTP requests it accepted before it stops.
HTTP_FINISH_S = 2.0


@functools.cache
def restartable_protocol_class() -> type:
    """Daphne's WebSocket protocol, able to close with ``SERVER_CLOSE_CODES`` (autobahn's
    ``sendClose`` refuses them; its ``sendCloseFrame``, which daphne uses for 1011, does not)."""
    from daphne.ws_protocol import WebSocketProtocol

    class RestartableWebSocketProtocol(WebSocketProtocol):
        def serverClose(self, code: int | None = None) -> None:
            if code in SERVER_CLOSE_CODES and self.state == self.STATE_OPEN:
                self.sendCloseFrame(code=code)
            else:
                super().serverClose(code=code)

    return RestartableWebSocketProtocol


@functools.cache
def redacting_server_class() -> type:
    """Daphne's ``Server`` with its action logger wrapped by :func:`redacting`, WebSocket
    closes with 1012, and a graceful drain on SIGTERM (``sessions.drain``). Built on first
    call, since importing ``daphne.server`` installs the Twisted reactor."""
    from daphne.server import Server

    class RedactingServer(Server):
        """Daphne's server with its access log redacted and a drain on SIGTERM."""

        def __init__(self, *args: Any, action_logger: ActionLogger | None = None, **kwargs: Any):
            if action_logger is not None:
                action_logger = redacting(action_logger)
            super().__init__(*args, action_logger=action_logger, **kwargs)
            self.ports: list[Any] = []
            if self.proxy_forwarded_address_header:
                # --proxy-headers: scope["client"] is then whatever this header claims.
                trust_address_header(self.proxy_forwarded_address_header)
            self.host_start: asyncio.Task | None = None

        def run(self) -> None:
            from twisted.internet import reactor

            # After startup: Twisted installs its own signal handlers first, then runs these.
            reactor.callWhenRunning(self.prepare_drain)
            super().run()

        def listen_success(self, port: Any) -> None:
            self.ports.append(port)
            super().listen_success(port)

        def prepare_drain(self) -> None:
            """Swap in the 1012-capable protocol and have SIGTERM drain instead of stop."""
            from twisted.internet import reactor

            from ..sessions.drain import worker_drain

            self.ws_factory.protocol = restartable_protocol_class()
            worker_drain.on_start.append(self.stop_listening)
            worker_drain.on_done.append(self.stop_after_requests)

            def on_sigterm(signum: int, frame: Any) -> None:
                reactor.callFromThread(worker_drain.request)

            signal.signal(signal.SIGTERM, on_sigterm)
            # On the next turn of the reactor: callWhenRunning callbacks run before its
            # asyncio loop does, and the host starts on that loop.
            reactor.callLater(0, self.start_host)

        def start_host(self) -> None:
            self.host_start = asyncio.get_running_loop().create_task(start_host_then_notify_ready())

        def stop_listening(self) -> None:
            """New connections go to the other workers sharing the socket (``--fd``)."""
            for port in self.ports:
                port.stopListening()

        def requests_in_flight(self) -> bool:
            """Whether an HTTP request this worker accepted is still unanswered."""
            from daphne.http_protocol import WebRequest

            return any(
                isinstance(protocol, WebRequest) and "disconnected" not in details
                for protocol, details in self.connections.items()
            )

        def stop_after_requests(self, within: float = HTTP_FINISH_S) -> None:
            """Stop once the HTTP requests accepted before the listening stopped (a scrape, a
            health check) are answered, or ``within`` seconds have passed."""
            from twisted.internet import reactor

            if within > 0 and self.requests_in_flight():
                reactor.callLater(0.05, self.stop_after_requests, within - 0.05)
            else:
                self.stop()

    return RedactingServer


def run_command_line(argv: list[str]) -> None:
    """Run daphne's command line with ``argv`` on the redacting server class, autobahn's
    debug-log arguments built only when a debug line is written."""
    from daphne.cli import CommandLineInterface

    from .autobahn import defer_debug_formatting

    defer_debug_formatting()
    cli = CommandLineInterface()
    cli.server_class = redacting_server_class()
    cli.run(argv)
