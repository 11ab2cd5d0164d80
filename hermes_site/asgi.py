"""
ASGI entry point: HTTP goes to Django; WebSockets pass the Origin check, then session-cookie
or token authentication, then the URL router (the gateway's route; anything else refused).
"""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hermes_site.settings")
# Django must be set up before importing anything that touches models.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from gateway_app.auth import GatewayAuthStack  # noqa: E402
from hermes_site.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": GatewayAuthStack(URLRouter(websocket_urlpatterns)),
    }
)

# Everything loaded so far (Django, the ASGI server, the gateway) lives as long as the
# process. Frozen, those objects are left out of every later garbage
# collection instead of being walked again by each full one; what is garbage now goes first.
gc.collect()
gc.freeze()
