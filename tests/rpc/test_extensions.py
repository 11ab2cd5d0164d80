"""Custom JSON-RPC methods: registered in an RPC_METHODS module, called over the real
dispatch, described by rpc.discover, and checked for clashes."""

from __future__ import annotations

import pytest

from gateway_app.checks import check_gateway_settings, check_rpc_methods
from gateway_app.rpc.dispatch import registered_methods

METHODS = "tests.extensions.methods"
DUPLICATE = "tests.extensions.duplicate_methods"
BROKEN = "tests.extensions.broken_commands"

gateway_db = pytest.mark.django_db(transaction=True)


@pytest.fixture
def extension(limits):
    limits(RPC_METHODS=[METHODS])


@gateway_db
async def test_a_third_party_method_is_called_over_the_dispatch(extension, connect, alice):
    """Tests that a method of an RPC_METHODS module answers with its result and sees the
    caller."""
    rpc = await connect(alice)
    result = await rpc.call("weather.forecast", {"city": "Lyon"})
    assert result == {"city": "Lyon", "forecast": "sunny", "asked_by": "alice"}


@gateway_db
async def test_a_third_party_methods_errors_are_error_responses(extension, connect, alice):
    """Tests that InvalidParams raised by the handler (or its typed accessors) is -32602
    naming the field, and the connection carries on."""
    rpc = await connect(alice)
    error = await rpc.error("weather.forecast", {"city": "Atlantis"})
    assert error["code"] == -32602 and error["data"] == {"field": "city"}
    error = await rpc.error("weather.forecast", {"city": 7})
    assert error["code"] == -32602 and error["data"] == {"field": "city"}
    assert await rpc.call("gateway.ping") == {"pong": True}


@gateway_db
async def test_a_method_of_a_module_not_configured_is_not_found(connect, alice, limits):
    """Tests that an imported module's method is callable only while RPC_METHODS lists it."""
    limits(RPC_METHODS=[METHODS])
    assert "weather.forecast" in registered_methods()
    limits(RPC_METHODS=[])
    rpc = await connect(alice)
    assert (await rpc.error("weather.forecast", {"city": "Lyon"}))["code"] == -32601


@gateway_db
async def test_rpc_discover_describes_a_third_party_method(extension, connect, alice):
    """Tests that the served OpenRPC document includes the extension's schemas."""
    rpc = await connect(alice)
    methods = {m["name"]: m for m in (await rpc.call("rpc.discover"))["methods"]}
    entry = methods["weather.forecast"]
    assert entry["summary"] == "Tomorrow's weather of a city."
    assert entry["params"] == [
        {
            "name": "city",
            "required": True,
            "schema": {"type": "string", "description": "where", "maxLength": 100},
        }
    ]


def test_a_method_registered_under_a_taken_name_is_a_check_error(limits):
    """Tests that a duplicate name is E059 naming both modules, not an import-time crash."""
    limits(RPC_METHODS=[DUPLICATE])
    (error,) = check_rpc_methods(None)
    assert error.id == "gateway_app.E059"
    assert DUPLICATE in error.msg and "gateway_app.rpc.methods.gateway" in error.msg


@gateway_db
async def test_the_first_registration_of_a_taken_name_answers(limits, connect, alice):
    """Tests that the gateway's own method keeps answering beside a duplicate."""
    limits(RPC_METHODS=[DUPLICATE])
    rpc = await connect(alice)
    assert await rpc.call("gateway.ping") == {"pong": True}


def test_a_method_module_that_does_not_import_is_a_check_error(limits):
    """Tests that an RPC_METHODS module failing to import is E056, naming it."""
    limits(RPC_METHODS=[BROKEN])
    (error,) = check_rpc_methods(None)
    assert error.id == "gateway_app.E056" and BROKEN in error.msg


def test_configured_method_modules_pass_the_checks(extension):
    """Tests that a module that imports and takes no taken name raises nothing."""
    assert check_rpc_methods(None) == []
    assert check_gateway_settings(None) == []


def test_the_setting_must_be_a_list_of_module_paths(limits):
    """Tests that RPC_METHODS given as one string is E055."""
    limits(RPC_METHODS="tests.extensions.methods")
    assert [e.id for e in check_gateway_settings(None)] == ["gateway_app.E055"]
