"""
Which request headers say that a request's client address is not its TCP peer's: the ones
reverse proxies add, and the one the server itself was told to take the address from
(daphne ``--proxy-headers``, ``--proxy-headers-host``). Address-based access
(``metrics.access``) refuses a request carrying any of them: its address is then either the
proxy's (every client of a proxy on the same machine is loopback) or the client's own claim.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The ``request.META`` names of the client-address headers reverse proxies add.
PROXY_ADDRESS_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")

#: ``request.META`` names of the headers this process' server rewrites the client address
#: from (recorded by the server adapter when it is built).
trusted_address_headers: set[str] = set()


def meta_name(header: str) -> str:
    """The ``request.META`` key of an HTTP header (``X-Client-Ip`` -> ``HTTP_X_CLIENT_IP``)."""
    return "HTTP_" + header.upper().replace("-", "_")


def trust_address_header(header: str) -> None:
    """Record that the server takes the client's address from ``header``."""
    trusted_address_headers.add(meta_name(header))


def forwarded(meta: Mapping[str, Any]) -> bool:
    """Whether the request's address came from a header (a proxy's or the client's)."""
    return any(name in meta for name in (*PROXY_ADDRESS_HEADERS, *trusted_address_headers))
