"""The use_gateway permission: with REQUIRE_PERMISSION on, only its holders (and superusers)
may open a WebSocket or run gateway_stdio; off, any active user may, as before."""

import logging

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import Group, Permission
from django.core.management import CommandError, call_command

from gateway_app.auth import permissions
from gateway_app.management.commands import gateway_stdio
from tests.conftest import Connection

pytestmark = pytest.mark.django_db(transaction=True)


def use_gateway() -> Permission:
    return Permission.objects.get(codename="use_gateway", content_type__app_label="gateway_app")


@database_sync_to_async
def grant(user, *, by_group: bool = False) -> None:
    if by_group:
        group = Group.objects.create(name="gateway users")
        group.permissions.add(use_gateway())
        user.groups.add(group)
    else:
        user.user_permissions.add(use_gateway())


async def handshake(user) -> tuple[bool, object]:
    """Connect a WebSocket as ``user``: (accepted, close code or subprotocol)."""
    connection = Connection(user)
    connected, detail = await connection.communicator.connect(timeout=10)
    if connected:
        await connection.close()
    return connected, detail


@pytest.fixture
def required(limits) -> None:
    limits(REQUIRE_PERMISSION=True)


async def test_websocket_without_the_permission_is_refused_before_accept(
    required, fresh_host, alice, caplog
):
    """Tests that a user lacking use_gateway is refused 4003 before accept, with a log line."""
    with caplog.at_level(logging.WARNING, logger="gateway_app.transport.websocket"):
        assert await handshake(alice) == (False, 4003)
    assert "lacks gateway_app.use_gateway" in caplog.text


async def test_websocket_with_the_permission_connects(required, connect, alice):
    """Tests that a user granted use_gateway directly connects and is served."""
    await grant(alice)
    rpc = await connect(alice)
    assert await rpc.call("gateway.ping") == {"pong": True}


async def test_websocket_with_the_permission_through_a_group_connects(required, connect, alice):
    """Tests that use_gateway held through a group is enough."""
    await grant(alice, by_group=True)
    rpc = await connect(alice)
    assert await rpc.call("gateway.ping") == {"pong": True}


async def test_websocket_of_a_superuser_connects_without_a_grant(required, connect, make_user):
    """Tests that a superuser has use_gateway implicitly."""
    root = await database_sync_to_async(make_user)("root", is_superuser=True)
    rpc = await connect(root)
    assert await rpc.call("gateway.ping") == {"pong": True}


async def test_websocket_without_the_permission_connects_when_not_required(connect, alice):
    """Tests that REQUIRE_PERMISSION defaults to off: any active user connects."""
    rpc = await connect(alice)
    assert await rpc.call("gateway.ping") == {"pong": True}


@pytest.fixture
def served(monkeypatch) -> list:
    """The callers gateway_stdio would serve (serving itself is replaced by recording)."""
    callers: list = []

    async def record(caller):
        callers.append(caller)

    monkeypatch.setattr(gateway_stdio, "serve_process_stdio", record)
    return callers


def test_stdio_refuses_a_user_without_the_permission(required, served, alice):
    """Tests that gateway_stdio --user refuses a user lacking use_gateway and serves nothing."""
    with pytest.raises(CommandError, match="use_gateway"):
        call_command("gateway_stdio", "--user", "alice")
    assert served == []


def test_stdio_refuses_the_default_local_user_without_the_permission(required, served):
    """Tests that the on-demand local user is no exception when the permission is required."""
    with pytest.raises(CommandError, match="use_gateway"):
        call_command("gateway_stdio")
    assert served == []


def test_stdio_serves_a_user_with_the_permission(required, served, alice):
    """Tests that gateway_stdio --user serves a user granted use_gateway."""
    alice.user_permissions.add(use_gateway())
    call_command("gateway_stdio", "--user", "alice")
    assert [caller.user_id for caller in served] == [alice.pk]


def test_stdio_serves_a_user_without_the_permission_when_not_required(served, alice):
    """Tests that without REQUIRE_PERMISSION gateway_stdio serves any active user."""
    call_command("gateway_stdio", "--user", "alice")
    assert [caller.user_id for caller in served] == [alice.pk]


async def test_without_require_permission_a_connect_makes_no_database_hop(
    alice, settings, monkeypatch
):
    """Tests that with REQUIRE_PERMISSION off the permission step asks nothing of the
    database thread (every connect would otherwise pay a thread hop for a constant)."""
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "REQUIRE_PERMISSION": False}

    def no_hop(function):
        raise AssertionError(f"{function.__name__} went to the database thread")

    monkeypatch.setattr(permissions, "database_sync_to_async", no_hop)
    assert await permissions.may_connect(alice.pk)
