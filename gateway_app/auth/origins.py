"""
The same-origin rule for WebSocket handshakes, as Django's CSRF Origin check computes it: a
browser's ``Origin`` must be the request's own origin (its scheme and ``get_host()``, which
enforces ``ALLOWED_HOSTS``) or match ``CSRF_TRUSTED_ORIGINS``. Host-only matching would let
any other port or scheme of the same host (another local service) drive a user's socket.
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest
from django.utils.http import is_same_domain

DEFAULT_PORTS = {"http": 80, "https": 443}
#: A WebSocket handshake is an HTTP request: ``wss`` came over https, ``ws`` over http.
HTTP_SCHEMES = {"ws": "http", "wss": "https"}


class Origin(NamedTuple):
    """A serialized http(s) origin with its port made explicit (80/443 when not written)."""

    scheme: str
    host: str
    port: int

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.netloc}"


def parse_origin(value: str) -> Origin | None:
    """The origin ``value`` names, or None unless it is exactly ``http(s)://host[:port]``
    (``null``, other schemes, paths, credentials and stray characters all give None)."""
    if not value.isascii() or not value.isprintable() or " " in value:
        return None
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or "@" in parts.netloc:
        return None
    if parts.path or parts.query or parts.fragment or value.endswith(("?", "#")):
        return None
    return Origin(parts.scheme, parts.hostname, port or DEFAULT_PORTS[parts.scheme])


class HandshakeRequest(HttpRequest):
    """
    An ``HttpRequest`` over a WebSocket scope, so that Django's own ``get_host()`` and
    ``scheme`` decide (``ALLOWED_HOSTS``, ``USE_X_FORWARDED_HOST``, ``SECURE_PROXY_SSL_HEADER``).
    """

    def __init__(self, scope: dict) -> None:
        super().__init__()
        # The ASGI default; daphne leaves the key out even under TLS.
        self._scope_scheme = HTTP_SCHEMES.get(scope.get("scheme", "ws"), "http")
        server = scope.get("server")
        if server:
            self.META["SERVER_NAME"], self.META["SERVER_PORT"] = server[0], str(server[1])
        for name, value in scope.get("headers", ()):
            key = name.decode("latin1").upper()
            # ``X_Forwarded_Proto`` would land on the META name of ``X-Forwarded-Proto``;
            # WSGI servers drop such headers for this reason. Credentials are not needed.
            if "_" in key or key in ("COOKIE", "AUTHORIZATION"):
                continue
            meta = "HTTP_" + key.replace("-", "_")
            text = value.decode("latin1")
            self.META[meta] = f"{self.META[meta]},{text}" if meta in self.META else text

    def _get_scheme(self) -> str:
        return self._scope_scheme


def request_origin(scope: dict) -> Origin | None:
    """The origin the handshake was sent to, or None when its Host is missing or not in
    ``ALLOWED_HOSTS`` (only ``CSRF_TRUSTED_ORIGINS`` can match then)."""
    request = HandshakeRequest(scope)
    if "HTTP_HOST" not in request.META and "SERVER_NAME" not in request.META:
        return None
    try:
        host = request.get_host()
    except DisallowedHost:
        return None
    return parse_origin(f"{request.scheme}://{host}")


def is_trusted(origin: Origin) -> bool:
    """Whether ``CSRF_TRUSTED_ORIGINS`` lists ``origin``, exactly or by Django's wildcard
    rule (``https://*.example.com``: that domain and its subdomains, scheme and port too)."""
    for entry in settings.CSRF_TRUSTED_ORIGINS:
        if "*" in entry:
            pattern = urlsplit(entry)
            if pattern.scheme == origin.scheme and is_same_domain(
                origin.netloc, pattern.netloc.lstrip("*")
            ):
                return True
        elif parse_origin(entry) == origin:
            return True
    return False


def origin_allowed(value: str, own: Origin | None) -> bool:
    """Whether a browser at Origin ``value`` may use this request's cookie: it is the
    request's own origin ``own``, or a trusted one."""
    origin = parse_origin(value)
    if origin is None:
        return False
    return origin == own or is_trusted(origin)
