"""
Keeps API tokens out of the ASGI server's access log. Daphne logs each request's path with
its query string from its protocol layer, where no ASGI middleware reaches, so
``adapters.daphne`` wraps daphne's action logger with :func:`redact_path` (the launcher,
``transport.serving``, installs it).
"""

from __future__ import annotations

from urllib.parse import unquote_plus

#: Query parameters that carry a credential (``?token=`` is how PROTOCOL.md lets clients that
#: cannot set headers authenticate).
SECRET_PARAMETERS = frozenset({"token"})
REDACTED = "[redacted]"


def redact_path(path: str) -> str:
    """``path`` with the value of every secret query parameter replaced by ``[redacted]``;
    names are decoded as the gateway decodes them, so ``?%74oken=`` is caught too."""
    base, question, query = path.partition("?")
    if not question:
        return path
    pairs = []
    for pair in query.split("&"):
        name, equals, _ = pair.partition("=")
        secret = equals and unquote_plus(name) in SECRET_PARAMETERS
        pairs.append(f"{name}={REDACTED}" if secret else pair)
    return f"{base}?{'&'.join(pairs)}"
