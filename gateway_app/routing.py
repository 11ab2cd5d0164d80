"""
The stable public path of the WebSocket routes, ``gateway_app.routing.websocket_urlpatterns``
(``hermes_site.asgi`` and deployments' own ASGI files import it); they live in
``transport.ws_urls``.
"""

from .transport.ws_urls import websocket_urlpatterns

__all__ = ["websocket_urlpatterns"]
