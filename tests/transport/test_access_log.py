"""The access-log redaction of query-string tokens (``gateway_app.transport.access_log``)."""

import pytest

from gateway_app.transport.access_log import redact_path


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        ("/api/ws?token=hgw_secret", "/api/ws?token=[redacted]"),
        ("/api/ws?a=1&token=hgw_secret&b=2", "/api/ws?a=1&token=[redacted]&b=2"),
        ("/api/ws?token=one&token=two", "/api/ws?token=[redacted]&token=[redacted]"),
        ("/api/ws?%74oken=hgw_secret", "/api/ws?%74oken=[redacted]"),
        ("/api/ws?token=", "/api/ws?token=[redacted]"),
    ],
)
def test_token_values_are_redacted(path, logged):
    """Tests that every ``token`` value is replaced, however its name is encoded."""
    assert redact_path(path) == logged


@pytest.mark.parametrize(
    "path", ["/api/ws", "/api/ws?", "/api/ws?tokens=1&x_token=2&token", "/admin/?q=token"]
)
def test_other_paths_are_logged_unchanged(path):
    """Tests that paths without a ``token`` parameter value are left as they are."""
    assert redact_path(path) == path
