"""Shared fixtures: users, a fresh session host per test, connected RPC clients, lowered
limits, and headless chromium for live tests."""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model

from gateway_app.auth import logins, tokens
from gateway_app.sessions.drain import worker_drain
from gateway_app.sessions.host import reset_host
from gateway_app.slash import client as slash_client
from gateway_app.transport.websocket import GatewayConsumer
from tests.support.postgres import PostgresServer, binary
from tests.support.procs import running
from tests.support.rpc import RpcClient
from tests.support.servers import Database

CHROMIUM = os.environ.get("HERMES_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Screenshots and other artifacts of live tests (gitignored).
OUTPUT_DIR = Path(__file__).resolve().parents[1] / "test-output"


@pytest.fixture(autouse=True)
def fresh_token_cache() -> None:
    """Every test starts with no API token or login session watched by an earlier one."""
    tokens.recent.clear()
    tokens.watch.reset()
    logins.watch.reset()


@pytest.fixture
async def fresh_host() -> AsyncIterator[None]:
    """A new session host and channel layer for the test, torn down (with its processes)."""
    channel_layers.backends.clear()
    yield
    await reset_host()
    worker_drain.reset()
    leftover = running(slash_client.live_worker_pids(), reaped=True)
    channel_layers.backends.clear()
    assert not leftover, f"slash workers left running: {leftover}"


@pytest.fixture
def make_user(db) -> Callable[..., object]:
    def make(username: str, **extra: object) -> object:
        return get_user_model().objects.create_user(username, password="pw", **extra)

    return make


@pytest.fixture
def alice(make_user):
    return make_user("alice")


@pytest.fixture
def bob(make_user):
    return make_user("bob")


class Connection:
    """A WebsocketCommunicator on the gateway consumer with an RpcClient over it."""

    def __init__(self, user: object):
        self.communicator = WebsocketCommunicator(GatewayConsumer.as_asgi(), "/api/ws")
        self.communicator.scope["user"] = user
        self.rpc = RpcClient(self.communicator.send_to, self._recv)

    async def _recv(self) -> str:
        return await self.communicator.receive_from(timeout=10)

    async def open(self) -> RpcClient:
        connected, _ = await self.communicator.connect(timeout=10)
        assert connected
        await self.rpc.wait_ready()
        return self.rpc

    async def close(self) -> None:
        await self.communicator.disconnect(timeout=10)


@pytest.fixture
async def connect(fresh_host) -> AsyncIterator[Callable]:
    """``await connect(user)`` opens a gateway connection; all are closed after the test."""
    opened: list[Connection] = []

    async def open_connection(user: object) -> RpcClient:
        connection = Connection(user)
        opened.append(connection)
        rpc = await connection.open()
        rpc.connection = connection
        return rpc

    yield open_connection
    for connection in opened:
        try:
            await connection.close()
        except Exception:
            pass


@pytest.fixture
def limits(settings):
    """``limits(NAME=value, ...)`` overrides gateway options for the test (cache cleared)."""

    def apply(**options):
        settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, **options}

    return apply


### Browser (live tests): headless Debian chromium driven by Playwright ###


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One headless chromium per module; closed (process ended) after it."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"chromium not installed at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def output_dir() -> Path:
    OUTPUT_DIR.mkdir(exist_ok=True)
    return OUTPUT_DIR


### PostgreSQL (live tests): one server per run, a fresh migrated database per use ###


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server on a free loopback port for the whole run; removed after it."""
    if binary("postgres") is None:
        pytest.skip("PostgreSQL is not installed (scripts/test installs postgresql)")
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_url(postgres_server, tmp_path_factory) -> Callable[..., str]:
    """``postgres_url(**params)``: the URL of a new database, copied from one migrated once
    (a copy takes a fraction of a migration); ``params`` go in its query (pool sizes)."""
    template = postgres_server.create_database("hermes_template")
    Database(tmp_path_factory.mktemp("pg-template"), url=template)
    names = itertools.count()

    def new(**params: object) -> str:
        name = f"hermes_{next(names)}"
        postgres_server.create_database(name, template="hermes_template")
        return postgres_server.url(name, **params)

    return new
