"""Shared fixtures: users, a fresh session host per test, and connected RPC clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import psutil
import pytest
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model

from gateway_app.auth import logins, tokens
from gateway_app.sessions.host import reset_host
from gateway_app.slash import client as slash_client
from gateway_app.transport.websocket import GatewayConsumer
from tests.support.rpc import RpcClient


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
    leftover = [pid for pid in slash_client.live_worker_pids() if psutil.pid_exists(pid)]
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
