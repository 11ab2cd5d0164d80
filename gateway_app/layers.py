"""
The stable path of the Redis channel layer that deployments name in ``CHANNEL_LAYERS``
(``gateway_app.layers.ResilientRedisChannelLayer``); it lives in ``sessions.cluster.layers``.
"""

from .sessions.cluster.layers import ResilientRedisChannelLayer

__all__ = ["ResilientRedisChannelLayer"]
