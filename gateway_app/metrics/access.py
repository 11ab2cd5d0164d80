"""
Who may scrape ``/metrics``: a direct connection from an address in ``METRICS_ALLOW``
(loopback by default), or a request authenticated as a user allowed to read them (a staff
user, or any user holding ``gateway_app.view_gatewaysession``), by the login session cookie
or by an API token (``Authorization: Bearer``). The address rule ignores requests that
passed a proxy (``transport.proxy``): behind one on the same machine every client would come
from loopback, and with daphne ``--proxy-headers`` the address is what the header claims.
"""

from __future__ import annotations

import ipaddress
import logging
from functools import lru_cache

from channels.db import database_sync_to_async
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http import HttpRequest

from ..auth.lookup import unrevoked_token
from ..auth.middleware import MAX_TOKEN_LENGTH
from ..conf import setting
from ..conf.kinds import parse_networks
from ..models import hash_token
from ..transport.proxy import forwarded

logger = logging.getLogger(__name__)

#: The permission that lets a non-staff user (a scraper's account) read the metrics.
PERMISSION = "gateway_app.view_gatewaysession"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(value: str) -> tuple[Network, ...]:
    return parse_networks(value)


def address_allowed(request: HttpRequest) -> bool:
    """Whether the request came straight (no proxy) from an address in ``METRICS_ALLOW``."""
    if forwarded(request.META):
        return False
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR") or "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in _networks(setting("METRICS_ALLOW")))


def _bearer(request: HttpRequest) -> str | None:
    parts = request.headers.get("Authorization", "").split()
    if len(parts) != 2 or parts[0].lower() != "bearer" or len(parts[1]) > MAX_TOKEN_LENGTH:
        return None
    return parts[1]


def _may_read(user: AbstractBaseUser | AnonymousUser) -> bool:
    return bool(user.is_active and (user.is_staff or user.has_perm(PERMISSION)))


def _authenticated_reader(user: AbstractBaseUser | AnonymousUser, raw: str | None) -> bool:
    """Whether the login's user, else the API token's, may read the metrics (one hop)."""
    if user.is_authenticated and _may_read(user):
        return True
    if raw is None:
        return False
    token = unrevoked_token(hash_token(raw))
    return token is not None and _may_read(token.user)


async def may_scrape(request: HttpRequest) -> bool:
    """Whether the request may read this worker's metrics (see the module docstring)."""
    if address_allowed(request):
        return True
    # In the request's own context (not a shared lookup task): a sync middleware stack
    # waits in the thread that thread-sensitive database calls must run in.
    user = await request.auser()
    return await database_sync_to_async(_authenticated_reader)(user, _bearer(request))
