"""System checks for the gateway's settings (``manage.py check``)."""

from __future__ import annotations

from django.conf import settings
from django.core import checks

from .conf import DEFAULTS, gateway_settings

_NON_NEGATIVE = (
    "REAP_GRACE_S",
    "SESSION_TTL_S",
    "SWEEP_INTERVAL_S",
    "DELTA_COALESCE_MS",
    "SLASH_TIMEOUT_S",
    "SLASH_CLOSE_TIMEOUT_S",
    "LIST_CACHE_S",
    "STORE_BATCH_MS",
    "TOKEN_RECHECK_S",
    "GROUP_REFRESH_S",
    "RATE_LIMIT_PER_S",
)
_POSITIVE_INT = (
    "MAX_LIVE_SESSIONS",
    "REPLAY_BUFFER_EVENTS",
    "REPLAY_BUFFER_BYTES",
    "MAX_FRAME_BYTES",
    "MAX_MESSAGE_BYTES",
    "MAX_LINES_PER_FRAME",
    "MAX_SESSIONS_PER_USER",
    "MAX_CONNECTIONS_PER_USER",
    "MAX_PROMPT_CHARS",
    "SEND_QUEUE_LIMIT",
    "SEND_QUEUE_BYTES",
)


@checks.register()
def check_gateway_settings(app_configs, **kwargs) -> list[checks.CheckMessage]:
    options = gateway_settings()
    errors: list[checks.CheckMessage] = []
    for name in options:
        if name not in DEFAULTS:
            errors.append(
                checks.Warning(
                    f"HERMES_GATEWAY[{name!r}] is not a known option.",
                    hint="See the settings table in the README.",
                    id="gateway_app.W001",
                )
            )
    for name in _NON_NEGATIVE:
        value = options[name]
        if not isinstance(value, int | float) or value < 0:
            errors.append(
                checks.Error(
                    f"HERMES_GATEWAY[{name!r}] must be a number >= 0, got {value!r}.",
                    id="gateway_app.E001",
                )
            )
    for name in _POSITIVE_INT:
        value = options[name]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            errors.append(
                checks.Error(
                    f"HERMES_GATEWAY[{name!r}] must be an integer >= 1, got {value!r}.",
                    id="gateway_app.E002",
                )
            )
    group_expiry = _layer_group_expiry()
    refresh = options["GROUP_REFRESH_S"]
    if isinstance(refresh, int | float) and refresh >= group_expiry:
        errors.append(
            checks.Warning(
                f"HERMES_GATEWAY['GROUP_REFRESH_S'] ({refresh}) is not below the channel "
                f"layer's group_expiry ({group_expiry}).",
                hint="Sockets open longer than group_expiry would stop getting session "
                "events; renew memberships more often.",
                id="gateway_app.W002",
            )
        )
    if options["AGENT"] not in ("echo", "openai"):
        errors.append(
            checks.Error(
                f"HERMES_AGENT must be 'echo' or 'openai', got {options['AGENT']!r}.",
                id="gateway_app.E003",
            )
        )
    return errors


def _layer_group_expiry() -> float:
    """The default channel layer's ``group_expiry`` (channels' own default: a day)."""
    config = (getattr(settings, "CHANNEL_LAYERS", {}) or {}).get("default", {})
    return float((config.get("CONFIG") or {}).get("group_expiry", 86400))
