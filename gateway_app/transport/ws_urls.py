"""WebSocket URL routes (no leading slash, as Channels' URLRouter expects)."""

from django.urls import path, re_path

from .websocket import GatewayConsumer, RefuseConsumer

websocket_urlpatterns = [
    path("api/ws", GatewayConsumer.as_asgi()),
    re_path(r"", RefuseConsumer.as_asgi()),
]
