"""The WebSocket routes gateway_app exports: the gateway's own path and nothing else, so a
host project's routes listed after them still get their connections."""

from __future__ import annotations

import pytest
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.test import override_settings
from django.urls import path

from gateway_app.routing import websocket_urlpatterns
from gateway_app.transport import ws_urls
from gateway_app.transport.websocket import GatewayConsumer


class HostConsumer(AsyncWebsocketConsumer):
    """A host project's own consumer: accepts and says who it is."""

    async def connect(self) -> None:
        await self.accept()
        await self.send(text_data="host")


# Channels' own consumers close stale database connections around each message.
@pytest.mark.django_db
async def test_a_host_route_after_the_gateway_routes_gets_its_connection():
    """Tests that a route a host project lists after gateway_app's is reached: the exported
    routes end in no catch-all that would refuse it first."""
    router = URLRouter([*websocket_urlpatterns, path("host/ws", HostConsumer.as_asgi())])
    communicator = WebsocketCommunicator(router, "/host/ws")
    connected, _ = await communicator.connect(timeout=5)
    try:
        assert connected
        assert await communicator.receive_from(timeout=5) == "host"
    finally:
        await communicator.disconnect()


def test_the_exported_routes_are_the_gateway_path_only():
    """Tests that gateway_app exports exactly one route, the gateway's, at api/ws by default."""
    (route,) = websocket_urlpatterns
    assert str(route.pattern) == "api/ws"
    assert route.callback.consumer_class is GatewayConsumer


def test_the_gateway_route_follows_the_websocket_path_option():
    """Tests that the route is built from HERMES_GATEWAY["WEBSOCKET_PATH"]."""
    with override_settings(HERMES_GATEWAY={"WEBSOCKET_PATH": "gateway/socket"}):
        (route,) = ws_urls.build_urlpatterns()
        assert ws_urls.websocket_path() == "gateway/socket"
    assert str(route.pattern) == "gateway/socket"


def test_the_url_the_chat_page_connects_to_is_the_route_from_the_root():
    """Tests that the chat page's WebSocket URL is the route's path with a leading slash."""
    with override_settings(HERMES_GATEWAY={"WEBSOCKET_PATH": "gateway/socket"}):
        assert ws_urls.websocket_url() == "/gateway/socket"
