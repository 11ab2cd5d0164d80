"""Error responses become exceptions that carry their wire code."""

import pytest

from gateway_app.client import errors
from gateway_app.client.errors import error_from_wire


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (-32700, errors.ParseError),
        (-32600, errors.InvalidRequest),
        (-32601, errors.MethodNotFound),
        (-32602, errors.InvalidParams),
        (-32603, errors.InternalError),
        (4001, errors.SessionNotFound),
        (4009, errors.SessionBusy),
        (4013, errors.TooLarge),
        (4029, errors.RateLimited),
    ],
)
def test_each_wire_code_maps_to_its_class(code, cls):
    """Tests that every code of PROTOCOL.md's table is raised as its own GatewayError subclass."""
    error = error_from_wire({"code": code, "message": "m"})
    assert type(error) is cls and error.code == code and error.message == "m"


def test_an_unknown_code_is_a_plain_gateway_error_keeping_the_code():
    """Tests that a code the library does not know still reaches the caller unchanged."""
    error = error_from_wire({"code": 4242, "message": "new", "data": {"x": 1}})
    assert type(error) is errors.GatewayError and error.code == 4242 and error.data == {"x": 1}


def test_rate_limited_exposes_the_retry_hint():
    """Tests that RateLimited.retry_after reads the gateway's retry_after_s."""
    error = error_from_wire({"code": 4029, "message": "slow", "data": {"retry_after_s": 0.5}})
    assert error.retry_after == 0.5
    assert error_from_wire({"code": 4029, "message": "slow"}).retry_after is None


def test_invalid_params_names_the_field():
    """Tests that InvalidParams.field is the field the gateway named."""
    error = error_from_wire({"code": -32602, "message": "bad", "data": {"field": "text"}})
    assert error.field == "text"
