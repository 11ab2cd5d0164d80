"""
The gateway's WebSocket route (no leading slash, as Channels' URLRouter expects). It is the
only one: a host project lists its own routes beside it, and refuses stray paths itself if it
wants to (hermes_site does, in its routing module).
"""

from __future__ import annotations

from django.urls import URLPattern, path

from ..conf import setting
from .websocket import GatewayConsumer


def websocket_path() -> str:
    """The gateway's route, ``HERMES_GATEWAY["WEBSOCKET_PATH"]``: the one place that reads
    the option, so the route and the chat page always agree."""
    return setting("WEBSOCKET_PATH")


def websocket_url() -> str:
    """The path a browser on this site connects to (the route from the root)."""
    return "/" + websocket_path()


def build_urlpatterns() -> list[URLPattern]:
    """The gateway's routes for the current settings."""
    return [path(websocket_path(), GatewayConsumer.as_asgi())]


websocket_urlpatterns = build_urlpatterns()
