"""
Gateway settings: ``settings.HERMES_GATEWAY`` over the defaults of the option definitions
(``options.py``), converted once to each option's type and read through one cached accessor
whose cache is cleared when a test overrides settings. Importing this package configures
nothing and loads no models (hermes_site.settings imports it).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from .environ import options_from_environ, parse_env
from .layers import layer_redis_url
from .options import BY_NAME, OPTIONS, Option

__all__ = [
    "BY_NAME",
    "DEFAULTS",
    "OPTIONS",
    "Option",
    "gateway_settings",
    "options_from_environ",
    "parse_env",
    "registry_redis_url",
    "setting",
]

#: Every option's default, by name.
DEFAULTS: dict[str, Any] = {option.name: option.default for option in OPTIONS}


@lru_cache(maxsize=1)
def gateway_settings() -> dict[str, Any]:
    """Return the effective gateway options: defaults overlaid by ``HERMES_GATEWAY``, each
    known option converted to its type when that loses nothing (else left for the checks)."""
    merged = dict(DEFAULTS)
    for name, value in (getattr(settings, "HERMES_GATEWAY", {}) or {}).items():
        option = BY_NAME.get(name)
        merged[name] = option.kind.coerce(value) if option is not None else value
    return merged


def setting(name: str) -> Any:
    """Return one gateway option by its UPPERCASE name, already of its option's type."""
    return gateway_settings()[name]


def registry_redis_url() -> str:
    """The Redis the session registry shares with other workers; "" for one worker alone.
    ``REDIS_URL`` when set, else the default channel layer's first Redis host, so that a
    Redis layer never runs beside per-worker registries (the checks report a layer whose
    host cannot be reduced to a URL)."""
    configured = setting("REDIS_URL")
    if configured:
        return configured
    return layer_redis_url(getattr(settings, "CHANNEL_LAYERS", None)) or ""


@receiver(setting_changed)
def _clear_cache(*, setting: str, **kwargs: Any) -> None:
    if setting == "HERMES_GATEWAY":
        gateway_settings.cache_clear()
