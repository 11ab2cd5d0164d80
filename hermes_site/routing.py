"""
The demo site's WebSocket routes: the gateway's, then a catch-all that refuses every other
path before accept (the app exports no catch-all, so host projects keep their own routes).
"""

from django.urls import re_path

from gateway_app.routing import websocket_urlpatterns as gateway_routes
from gateway_app.transport.websocket import RefuseConsumer

websocket_urlpatterns = [
    *gateway_routes,
    re_path(r"", RefuseConsumer.as_asgi()),
]
