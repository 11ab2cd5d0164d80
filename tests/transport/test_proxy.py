"""Which headers make a request's address not its TCP peer's (``transport.proxy``)."""

import pytest

from gateway_app.transport import proxy


@pytest.fixture(autouse=True)
def no_trusted_header(monkeypatch):
    monkeypatch.setattr(proxy, "trusted_address_headers", set())


def test_a_request_with_a_proxys_address_header_is_forwarded():
    """Tests that X-Forwarded-For, Forwarded and X-Real-IP each mark a proxied request."""
    for name in ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP"):
        assert proxy.forwarded({"REMOTE_ADDR": "127.0.0.1", name: "203.0.113.7"}), name
    assert not proxy.forwarded({"REMOTE_ADDR": "127.0.0.1"})


def test_the_header_the_server_trusts_marks_a_request_forwarded():
    """Tests that once the server takes addresses from a header of its own choosing, a
    request carrying it (even empty) is forwarded: its address is that header's claim."""
    assert not proxy.forwarded({"HTTP_X_CLIENT_IP": ""})
    proxy.trust_address_header("X-Client-Ip")
    assert proxy.forwarded({"HTTP_X_CLIENT_IP": ""})
