"""
What the channel layer configuration says about Redis: whether the default layer is a
channels-redis one, and the URL of its first host, from which the session registry's Redis
is derived so that a Redis layer never runs beside per-worker registries.
"""

from __future__ import annotations

from typing import Any

from django.utils.module_loading import import_string

#: Keys of a channels-redis host dict that change how, not where or as whom, it connects: a
#: host with any other key (a password, an ACL user, TLS files) is not reduced to its address.
_CONNECTION_TUNING = frozenset(
    {
        "address",
        "socket_timeout",
        "socket_connect_timeout",
        "socket_keepalive",
        "health_check_interval",
        "retry_on_timeout",
        "max_connections",
    }
)


def default_layer(channel_layers: Any) -> dict[str, Any] | None:
    """The ``default`` entry of ``CHANNEL_LAYERS``, or None when there is none."""
    if not isinstance(channel_layers, dict):
        return None
    config = channel_layers.get("default")
    return config if isinstance(config, dict) else None


def is_redis_layer(backend: str) -> bool:
    """Whether ``backend`` carries messages through Redis (any channels-redis layer)."""
    if backend.startswith("channels_redis."):
        return True
    from channels_redis.core import RedisChannelLayer

    try:
        layer_class = import_string(backend)
    except ImportError:
        return False  # channels reports an unknown backend itself when it is used
    return isinstance(layer_class, type) and issubclass(layer_class, RedisChannelLayer)


def layer_redis_url(channel_layers: Any) -> str | None:
    """The URL of the default layer's first Redis host; "" when the layer is not a Redis
    one, None when it is but its first host is no plain URL (sentinels, credentials)."""
    config = default_layer(channel_layers)
    if config is None or not is_redis_layer(str(config.get("BACKEND", ""))):
        return ""
    from channels_redis.utils import decode_hosts

    try:
        first = decode_hosts((config.get("CONFIG") or {}).get("hosts"))[0]
    except (ValueError, TypeError, IndexError, KeyError):
        return None
    if not isinstance(first, dict) or not set(first) <= _CONNECTION_TUNING | {"host", "port"}:
        return None
    if isinstance(first.get("address"), str) and not {"host", "port"} & set(first):
        return first["address"]
    if isinstance(first.get("host"), str) and "address" not in first:
        return f"redis://{first['host']}:{first.get('port', 6379)}"
    return None
