"""The daphne adapter: the unsent-bytes probe behind an ASGI ``send`` and the redacting
Server class, checked against the real daphne, channels and Twisted classes so that a change
of shape in any of them fails here."""

import functools
import os
import sys

import pytest
from channels.sessions import InstanceSessionWrapper
from daphne.server import Server
from twisted.internet.abstract import FileDescriptor

from gateway_app.adapters.daphne import (
    READY_FD_ENV,
    redacting,
    redacting_server_class,
    run_command_line,
    server_buffer_probe,
    start_host_then_notify_ready,
)
from gateway_app.sessions.host import current_host
from gateway_app.transport import proxy

ENDPOINTS = ["tcp:port=0:interface=127.0.0.1"]


class Reactor:
    """The two calls a FileDescriptor makes on its reactor while writing."""

    def addWriter(self, writer):
        pass

    def removeWriter(self, writer):
        pass


class Socket(FileDescriptor):
    """A real Twisted FileDescriptor whose socket accepts ``accept`` bytes per doWrite."""

    connected = 1

    def __init__(self, accept: int):
        super().__init__(reactor=Reactor())
        self.accept = accept

    def writeSomeData(self, data):
        return min(len(data), self.accept)


class Protocol:
    """Stands for daphne's protocol object: what daphne's send is bound to."""

    def __init__(self, transport):
        self.transport = transport


async def daphne_send(protocol: Protocol):
    """The ``send`` daphne's real Server.create_application hands an application."""
    sends = []

    async def application(scope, receive, send):
        sends.append(send)

    server = Server(application=application, endpoints=ENDPOINTS)
    server.connections = {protocol: {}}
    queue = server.create_application(protocol, {"type": "websocket"})
    assert queue is not None
    await server.connections[protocol]["application_instance"]
    return sends[0]


async def test_probe_counts_what_twisted_holds_unsent_behind_daphnes_send():
    """Tests that the probe, given daphne's send behind channels' session wrapper, reports
    the bytes a real Twisted FileDescriptor has been given and not yet written."""
    socket = Socket(accept=4)
    send = InstanceSessionWrapper(
        {"type": "websocket", "cookies": {}}, await daphne_send(Protocol(socket))
    ).send
    probe = server_buffer_probe(send)
    assert probe is not None and probe() == 0
    socket.write(b"x" * 10)
    assert probe() == 10
    socket.doWrite()
    assert probe() == 6
    socket.write(b"y" * 3)
    assert probe() == 9


def test_probe_reads_an_asyncio_transport():
    """Tests that an asyncio transport's get_write_buffer_size is used when reachable (a
    bound send of a protocol holding one, as uvicorn's is)."""

    class Transport:
        def get_write_buffer_size(self):
            return 123

    class UvicornProtocol:
        transport = Transport()

        async def asgi_send(self, message):
            pass

    assert server_buffer_probe(UvicornProtocol().asgi_send)() == 123


def test_probe_is_none_without_a_transport():
    """Tests that a plain send callable (the test communicator's) gives no probe."""

    async def send(message):
        pass

    assert server_buffer_probe(send) is None
    assert server_buffer_probe(functools.partial(send)) is None


def test_the_wrapped_action_logger_gets_the_redacted_path():
    """Tests that daphne's action logger, wrapped, sees the redacted path and the rest."""
    seen = []
    log_action = redacting(lambda protocol, action, details: seen.append(details))
    log_action("http", "complete", {"path": "/api/ws?token=hgw_secret", "status": 404})
    assert seen == [{"path": "/api/ws?token=[redacted]", "status": 404}]


def test_the_redacting_server_logs_through_daphnes_log_action_redacted():
    """Tests that daphne's Server, built by the adapter with an action logger, passes the
    logger redacted paths where daphne's protocols report requests (Server.log_action)."""
    seen = []
    server_class = redacting_server_class()
    assert issubclass(server_class, Server)
    server = server_class(
        application=None,
        endpoints=ENDPOINTS,
        action_logger=lambda protocol, action, details: seen.append((action, details)),
    )
    server.log_action("websocket", "connecting", {"path": "/api/ws?token=hgw_secret"})
    assert seen == [("connecting", {"path": "/api/ws?token=[redacted]"})]


def test_the_redacting_server_keeps_no_access_log_when_daphne_has_none():
    """Tests that a server built without an access log (daphne -v0) gets none."""
    server = redacting_server_class()(application=None, endpoints=ENDPOINTS)
    assert server.action_logger is None


async def application(scope, receive, send):
    """The ASGI application the command-line test names."""


def test_daphnes_command_line_serves_with_the_redacting_server(monkeypatch, capsys):
    """Tests that run_command_line has daphne's command line build its server from the
    redacting class (its ``server_class`` hook), with daphne's access log redacted."""
    servers = []
    monkeypatch.setattr(redacting_server_class(), "run", lambda server: servers.append(server))
    monkeypatch.setattr(sys, "path", list(sys.path))
    run_command_line(["--access-log", "-", "-b", "127.0.0.1", "-p", "0", f"{__name__}:application"])
    assert len(servers) == 1
    details = {"client": ["127.0.0.1", 1], "path": "/api/ws?token=hgw_secret"}
    servers[0].log_action("websocket", "connected", details)
    out = capsys.readouterr().out
    assert "WSCONNECT /api/ws?token=[redacted]" in out and "hgw_secret" not in out


def test_a_drained_server_stops_only_after_its_unanswered_http_requests(monkeypatch):
    """Tests that the server waits for an HTTP request accepted before it stopped listening
    (a scrape racing a rolling restart lost its answer), and stops once it is answered."""
    from daphne.http_protocol import WebRequest
    from twisted.internet import reactor

    server = redacting_server_class()(application=None, endpoints=ENDPOINTS)
    later, stopped = [], []
    monkeypatch.setattr(reactor, "callLater", lambda delay, f, *args: later.append((f, args)))
    monkeypatch.setattr(server, "stop", lambda: stopped.append(True))
    request = WebRequest.__new__(WebRequest)
    server.connections = {request: {"connected": 0.0}}
    server.stop_after_requests()
    assert stopped == [] and len(later) == 1
    server.connections[request]["disconnected"] = 1.0
    f, args = later.pop()
    f(*args)
    assert stopped == [True]


def test_a_drained_server_stops_anyway_when_a_request_outlasts_the_wait(monkeypatch):
    """Tests that an HTTP request still unanswered after the wait does not keep the worker."""
    from daphne.http_protocol import WebRequest

    server = redacting_server_class()(application=None, endpoints=ENDPOINTS)
    stopped = []
    monkeypatch.setattr(server, "stop", lambda: stopped.append(True))
    server.connections = {WebRequest.__new__(WebRequest): {"connected": 0.0}}
    server.stop_after_requests(within=0)
    assert stopped == [True]


def test_daphnes_proxy_headers_option_marks_its_header_as_forwarded(monkeypatch):
    """Tests that a server built from daphne's --proxy-headers --proxy-headers-host records
    that header, so that address-based access refuses requests carrying it."""
    monkeypatch.setattr(proxy, "trusted_address_headers", set())
    monkeypatch.setattr(redacting_server_class(), "run", lambda server: None)
    monkeypatch.setattr(sys, "path", list(sys.path))
    argv = ["--proxy-headers", "--proxy-headers-host", "X-Client-Ip", "-b", "127.0.0.1", "-p", "0"]
    run_command_line([*argv, f"{__name__}:application"])
    assert proxy.forwarded({"HTTP_X_CLIENT_IP": "127.0.0.1"})


@pytest.mark.django_db(transaction=True)
async def test_a_worker_says_it_serves_only_once_its_session_host_runs(fresh_host, monkeypatch):
    """Tests that the launcher hears "serving" from a worker after its session host started,
    so the first resume a rolling restart sends there does not wait for the host."""
    read_end, write_end = os.pipe()
    monkeypatch.setenv(READY_FD_ENV, str(write_end))
    try:
        await start_host_then_notify_ready()
        assert current_host() is not None
        assert os.read(read_end, 1) == b"1"
    finally:
        os.close(read_end)
