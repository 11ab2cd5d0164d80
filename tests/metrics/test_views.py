"""``GET /metrics``: who may scrape it (by address, by login, by API token) and what it
serves. The attacks first: anonymous from elsewhere, a plain user, a proxied request."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission
from django.test import AsyncClient
from django.urls import reverse
from prometheus_client import CONTENT_TYPE_LATEST

from gateway_app.adapters.daphne import redacting_server_class
from gateway_app.models import ApiToken
from gateway_app.sessions.host import get_host
from gateway_app.transport import proxy
from tests.support.metrics import value

pytestmark = pytest.mark.django_db(transaction=True)

#: A client address outside the default METRICS_ALLOW (loopback).
ELSEWHERE = ["203.0.113.7", 40000]


def url() -> str:
    return reverse("gateway_app:metrics")


class AddressedClient(AsyncClient):
    """A test client whose requests come from ``address`` (the ASGI scope's client)."""

    address = ELSEWHERE

    def _base_scope(self, **request):
        return {**super()._base_scope(**request), "client": self.address}


@pytest.fixture
def async_client() -> AddressedClient:
    return AddressedClient()


async def scrape(async_client, client=ELSEWHERE, **headers):
    async_client.address = client
    return await async_client.get(url(), headers=headers)


async def mint(user) -> tuple[ApiToken, str]:
    return await sync_to_async(ApiToken.mint)(user)


async def grant_view_permission(user) -> None:
    permission = await Permission.objects.aget(codename="view_gatewaysession")
    await user.user_permissions.aadd(permission)


async def test_anonymous_from_another_address_is_refused(fresh_host, async_client):
    """Tests that a request with no credentials from outside METRICS_ALLOW gets 403."""
    response = await scrape(async_client)
    assert response.status_code == 403
    assert b"hermes_" not in response.content


async def test_a_logged_in_user_without_the_permission_is_refused(fresh_host, async_client, alice):
    """Tests that a login session of a non-staff user without view_gatewaysession is 403."""
    await async_client.aforce_login(alice)
    assert (await scrape(async_client)).status_code == 403


async def test_a_token_of_a_user_without_the_permission_is_refused(fresh_host, async_client, alice):
    """Tests that an API token of a plain user (a chat client's token) cannot scrape."""
    _, raw = await mint(alice)
    response = await scrape(async_client, Authorization=f"Bearer {raw}")
    assert response.status_code == 403


async def test_a_loopback_request_that_came_through_a_proxy_is_refused(fresh_host, async_client):
    """Tests that the address rule ignores a proxied request: behind a proxy on the same
    machine every client arrives from loopback with X-Forwarded-For (or Forwarded)."""
    loopback = ["127.0.0.1", 50000]
    for header in ({"X-Forwarded-For": "203.0.113.7"}, {"Forwarded": "for=203.0.113.7"}):
        assert (await scrape(async_client, loopback, **header)).status_code == 403


async def test_a_loopback_request_is_served_by_default(fresh_host, async_client):
    """Tests that a direct request from loopback (a local scraper) needs no credentials, and
    gets the text format labelled with the worker's name, never cached."""
    response = await scrape(async_client, ["127.0.0.1", 50000])
    assert response.status_code == 200
    assert response["Content-Type"] == CONTENT_TYPE_LATEST
    assert "no-cache" in response["Cache-Control"]
    worker = (await get_host()).worker_name
    assert (
        value(response.content.decode(), "hermes_connections", worker=worker, transport="websocket")
        is not None
    )


async def test_an_ipv6_loopback_request_is_served_by_default(fresh_host, async_client):
    """Tests that ::1 is in the default allow-list too."""
    assert (await scrape(async_client, ["::1", 50000])).status_code == 200


async def test_an_allowed_network_admits_its_addresses_only(fresh_host, async_client, limits):
    """Tests that METRICS_ALLOW replaces the default: its network is served, loopback is not."""
    limits(METRICS_ALLOW="203.0.113.0/24")
    assert (await scrape(async_client)).status_code == 200
    assert (await scrape(async_client, ["127.0.0.1", 1])).status_code == 403


async def test_an_empty_allow_list_admits_no_address(fresh_host, async_client, limits):
    """Tests that METRICS_ALLOW='' leaves only authenticated scrapes."""
    limits(METRICS_ALLOW="")
    assert (await scrape(async_client, ["127.0.0.1", 1])).status_code == 403


async def test_a_staff_login_may_scrape_from_anywhere(fresh_host, async_client, make_user):
    """Tests that a staff user's login session reads the metrics, as it reads the live page."""
    await async_client.aforce_login(await sync_to_async(make_user)("ops", is_staff=True))
    assert (await scrape(async_client)).status_code == 200


async def test_a_token_of_a_user_with_the_permission_may_scrape(
    fresh_host, async_client, make_user
):
    """Tests that a scraper's account (not staff) holding view_gatewaysession scrapes with
    its API token from any address."""
    scraper = await sync_to_async(make_user)("prometheus")
    await grant_view_permission(scraper)
    _, raw = await mint(scraper)
    response = await scrape(async_client, Authorization=f"Bearer {raw}")
    assert response.status_code == 200


async def test_a_revoked_token_may_not_scrape(fresh_host, async_client, make_user):
    """Tests that revoking the scraper's token stops its scrapes."""
    scraper = await sync_to_async(make_user)("prometheus")
    await grant_view_permission(scraper)
    token, raw = await mint(scraper)
    await ApiToken.objects.filter(pk=token.pk).aupdate(revoked_at="2026-01-01T00:00Z")
    assert (await scrape(async_client, Authorization=f"Bearer {raw}")).status_code == 403


async def test_an_inactive_staff_login_is_refused(fresh_host, async_client, make_user):
    """Tests that a deactivated staff user's still-open login cannot scrape."""
    ops = await sync_to_async(make_user)("ops", is_staff=True)
    await async_client.aforce_login(ops)
    ops.is_active = False
    await ops.asave()
    assert (await scrape(async_client)).status_code == 403


async def test_post_is_not_allowed(fresh_host, async_client):
    """Tests that the endpoint answers GET and HEAD only."""
    async_client.address = ["127.0.0.1", 1]
    response = await async_client.post(url())
    assert response.status_code == 405


async def test_a_loopback_address_taken_from_the_servers_own_proxy_header_is_refused(
    fresh_host, async_client, monkeypatch
):
    """Tests that when the server takes the client's address from a header of its own
    choosing (daphne --proxy-headers-host X-Client-Ip), a request carrying that header,
    whose address is then the client's claim (here loopback), does not count as loopback."""
    monkeypatch.setattr(proxy, "trusted_address_headers", set())
    server_class = redacting_server_class()
    server_class(
        application=None, endpoints=["tcp:port=0"], proxy_forwarded_address_header="X-Client-Ip"
    )
    forged = ["127.0.0.1", 0]
    assert (await scrape(async_client, forged, **{"X-Client-Ip": "127.0.0.1"})).status_code == 403
    assert (await scrape(async_client, forged)).status_code == 200
