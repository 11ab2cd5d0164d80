"""The host channel routes each message by its type to the handler of the same name."""

import logging

import pytest

from gateway_app.sessions.cluster import messages
from gateway_app.sessions.host import get_host

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def host(fresh_host):
    return await get_host()


async def test_every_host_message_type_is_routed_to_the_handler_of_its_name(host):
    """Tests that each type messages.py defines has its handler, named as Channels names
    handlers ("session.reap" -> session_reap)."""
    handlers = host.host_channel.handlers
    assert set(handlers) == set(messages.HOST_MESSAGE_TYPES)
    for kind, handler in handlers.items():
        assert handler.__name__ == kind.replace(".", "_")


async def test_a_message_of_unknown_type_is_logged_as_an_error(host, caplog):
    """Tests that a message no handler serves is logged at ERROR and dropped."""
    with caplog.at_level(logging.ERROR, logger="gateway_app.sessions.hostchannel"):
        await host.host_channel.dispatch({"type": "session.explode", "id": "x"})
    assert any("session.explode" in r.getMessage() for r in caplog.records)


async def test_a_type_naming_another_method_of_the_channel_runs_nothing(host, caplog):
    """Tests that a message whose type is the name of a non-handler method (``stop``) is an
    unknown type: the host channel keeps serving."""
    with caplog.at_level(logging.ERROR, logger="gateway_app.sessions.hostchannel"):
        await host.host_channel.dispatch({"type": "stop"})
    assert not host.host_channel.task.done()
    assert caplog.records


def test_every_message_built_for_a_host_carries_a_fresh_id():
    """Tests that each constructor gives its message an id (calls a call_id), fresh each
    time, so a host can tell a replay."""
    conn = {"channel": "c", "user_id": 1, "username": "u", "is_staff": False, "worker": "w"}
    built = [
        messages.reap("s", 1),
        messages.teardown("s", "closed"),
        messages.call("r", messages.Operation.RESUME, "s", {}, conn),
        messages.host_query("r", messages.SNAPSHOT),
        messages.token_revoked(1),
        messages.login_ended("digest"),
        messages.login_changed(1),
    ]
    ids = [messages.message_id(message) for message in built]
    assert all(ids) and len(set(ids)) == len(built)
    assert {m["type"] for m in built} - {messages.HOST_REPLY} <= set(messages.HOST_MESSAGE_TYPES)
