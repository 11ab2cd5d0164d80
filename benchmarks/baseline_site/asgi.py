"""
ASGI entry points of the baseline site: ``stock`` (the consumer as Channels ships it) and
``nohop`` (the same consumer without the per-message ``aclose_old_connections()`` hop).
Run as ``daphne benchmarks.baseline_site.asgi:stock`` from the repository root.
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.baseline_site.settings")
django.setup(set_prefix=False)

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from .consumers import NoHopConsumer, StockConsumer  # noqa: E402

stock = ProtocolTypeRouter({"websocket": URLRouter([path("api/ws", StockConsumer.as_asgi())])})
nohop = ProtocolTypeRouter({"websocket": URLRouter([path("api/ws", NoHopConsumer.as_asgi())])})
