"""
The stable public path of the WebSocket routes, ``gateway_app.routing.websocket_urlpatterns``
(``hermes_site.routing`` and host projects' ASGI files import it): the gateway's route only,
no catch-all. They live in ``transport.ws_urls``.
"""

from .transport.ws_urls import websocket_urlpatterns

__all__ = ["websocket_urlpatterns"]
