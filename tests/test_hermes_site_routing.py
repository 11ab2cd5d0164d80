"""hermes_site's WebSocket routes: the gateway's, then its own catch-all refusal."""

from __future__ import annotations

import pytest
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from hermes_site.routing import websocket_urlpatterns


@pytest.mark.parametrize("stray", ["/other", "/api/ws/extra", "/"])
async def test_stray_paths_are_refused_before_accept(stray):
    """Tests that the demo site refuses any WebSocket path other than the gateway's with 4003
    before accept: the catch-all lives in hermes_site, not in the app's routes."""
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), stray)
    connected, code = await communicator.connect(timeout=5)
    assert (connected, code) == (False, 4003)


def test_the_gateway_route_comes_first():
    """Tests that the site lists the app's routes before its catch-all."""
    from gateway_app.routing import websocket_urlpatterns as gateway_routes

    assert websocket_urlpatterns[: len(gateway_routes)] == gateway_routes
    assert len(websocket_urlpatterns) == len(gateway_routes) + 1
