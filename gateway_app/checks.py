"""System checks for the gateway's settings (``manage.py check``)."""

from __future__ import annotations

import inspect
import math
import os
from typing import Any
from urllib.parse import urlparse

from django.conf import settings
from django.core import checks
from django.utils.module_loading import import_string

from .agents import sandbox
from .conf import DEFAULTS, gateway_settings
from .sessions.cluster.signing import SIGNED_FORMAT

#: Durations and rates where 0 means "off" or "at once".
_NON_NEGATIVE = (
    "REAP_GRACE_S",
    "SESSION_TTL_S",
    "SWEEP_INTERVAL_S",
    "SETTLE_INTERVAL_S",
    "PENDING_QUESTION_TIMEOUT_S",
    "DELTA_COALESCE_MS",
    "SLASH_CLOSE_TIMEOUT_S",
    "LIST_CACHE_S",
    "STORE_BATCH_MS",
    "TOKEN_RECHECK_S",
    "GROUP_REFRESH_S",
    "RATE_LIMIT_PER_S",
)
#: Timeouts and periods where 0 would fail everything at once or spin the event loop.
_POSITIVE = (
    "AGENT_TIMEOUT_S",
    "SLASH_TIMEOUT_S",
    "TERMINAL_TIMEOUT_S",
    "HEARTBEAT_S",
    "HOST_DEAD_AFTER_S",
    "FORWARD_TIMEOUT_S",
)
_POSITIVE_INT = (
    "MAX_LIVE_SESSIONS",
    "REPLAY_BUFFER_EVENTS",
    "REPLAY_BUFFER_BYTES",
    "HISTORY_LIMIT",
    "SLASH_OUTPUT_LIMIT",
    "TERMINAL_OUTPUT_LIMIT",
    "TERMINAL_MAX_PROCESSES",
    "TERMINAL_MAX_MEMORY_BYTES",
    "TERMINAL_MAX_FILE_BYTES",
    "MAX_FRAME_BYTES",
    "MAX_MESSAGE_BYTES",
    "MAX_LINES_PER_FRAME",
    "RATE_LIMIT_BURST",
    "MAX_SESSIONS_PER_USER",
    "MAX_CONNECTIONS_PER_USER",
    "MAX_PROMPT_CHARS",
    "SEND_QUEUE_LIMIT",
    "SEND_QUEUE_BYTES",
)
_STRING = (
    "AGENT",
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
    "MODEL",
    "WORKER_NAME",
    "TERMINAL_SCRATCH_DIR",
)


def _number(value: Any) -> bool:
    """A finite int or float; booleans (ints to Python) and NaN/infinity are not."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


#: (options, test, what the error says they must be, check id).
_RULES = (
    (_NON_NEGATIVE, lambda v: _number(v) and v >= 0, "a number >= 0", "gateway_app.E001"),
    (
        _POSITIVE_INT,
        lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
        "an integer >= 1",
        "gateway_app.E002",
    ),
    (_POSITIVE, lambda v: _number(v) and v > 0, "a number > 0", "gateway_app.E004"),
    (_STRING, lambda v: isinstance(v, str), "a string", "gateway_app.E005"),
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
    for names, valid, what, check_id in _RULES:
        for name in names:
            value = options[name]
            if not valid(value):
                errors.append(
                    checks.Error(
                        f"HERMES_GATEWAY[{name!r}] must be {what}, got {value!r}.", id=check_id
                    )
                )
    errors += _check_heartbeat(options)
    if not isinstance(options["SKIN"], dict):
        errors.append(
            checks.Error(
                f"HERMES_GATEWAY['SKIN'] must be a dict (a JSON object), got {options['SKIN']!r}.",
                id="gateway_app.E007",
            )
        )
    group_expiry = _layer_group_expiry()
    refresh = options["GROUP_REFRESH_S"]
    if _number(refresh) and refresh >= group_expiry:
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
    elif options["AGENT"] == "openai":
        errors += _check_openai(options)
    errors += _check_terminal(options)
    return errors


def _check_terminal(options: dict[str, Any]) -> list[checks.CheckMessage]:
    """The terminal tool's sandbox options, and whether the sandbox works on this machine."""
    errors: list[checks.CheckMessage] = []
    mode, network = options["TERMINAL_SANDBOX"], options["TERMINAL_NETWORK"]
    if mode not in sandbox.MODES:
        errors.append(
            checks.Error(
                f"HERMES_GATEWAY['TERMINAL_SANDBOX'] must be 'bwrap' or 'none', got {mode!r}.",
                id="gateway_app.E011",
            )
        )
    if not isinstance(network, bool):
        errors.append(
            checks.Error(
                f"HERMES_GATEWAY['TERMINAL_NETWORK'] must be True or False, got {network!r}.",
                id="gateway_app.E012",
            )
        )
    root = options["TERMINAL_SCRATCH_DIR"]
    if isinstance(root, str) and root and not os.path.isabs(root):
        errors.append(
            checks.Error(
                f"HERMES_GATEWAY['TERMINAL_SCRATCH_DIR'] must be an absolute path, got {root!r}.",
                id="gateway_app.E013",
            )
        )
    if mode == "none":
        errors.append(
            checks.Warning(
                "The terminal tool runs commands without a sandbox (TERMINAL_SANDBOX = 'none'): "
                "they see the gateway's files, database and processes, as its user.",
                hint="Install bubblewrap and remove TERMINAL_SANDBOX from HERMES_GATEWAY.",
                id="gateway_app.W010",
            )
        )
    elif mode == "bwrap" and isinstance(network, bool):
        reason = sandbox.unavailable_reason(sandbox.SandboxConfig(network=network))
        if reason is not None:
            errors.append(
                checks.Error(
                    f"The terminal tool is disabled: {reason}.",
                    hint="Install the Debian package bubblewrap (and allow user namespaces), "
                    "or set TERMINAL_SANDBOX = 'none' to run commands unsandboxed.",
                    id="gateway_app.E010",
                )
            )
    return errors


def _check_heartbeat(options: dict[str, Any]) -> list[checks.CheckMessage]:
    """A host must beat at least twice per HOST_DEAD_AFTER_S, or one late beat kills it."""
    beat, dead_after = options["HEARTBEAT_S"], options["HOST_DEAD_AFTER_S"]
    if not (_number(beat) and _number(dead_after) and beat > 0 and dead_after > 0):
        return []  # reported above (E004)
    if beat * 2 <= dead_after:
        return []
    return [
        checks.Error(
            f"HERMES_GATEWAY['HEARTBEAT_S'] ({beat}) must be at most half of "
            f"HERMES_GATEWAY['HOST_DEAD_AFTER_S'] ({dead_after}).",
            hint="Otherwise a live host's liveness key can expire between two beats, and "
            "other workers take its sessions over.",
            id="gateway_app.E006",
        )
    ]


def _check_openai(options: dict[str, Any]) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    url = options["OPENAI_BASE_URL"]
    try:
        parsed = urlparse(url) if isinstance(url, str) else None
    except ValueError:  # an unbalanced "[" in the host, say
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.netloc:
        errors.append(
            checks.Error(
                f"OPENAI_BASE_URL must be an http(s) URL, got {url!r}.",
                id="gateway_app.E008",
            )
        )
    model = options["MODEL"]
    if not isinstance(model, str) or not model.strip():
        errors.append(
            checks.Error(
                f"HERMES_MODEL must name a model for the openai agent, got {model!r}.",
                id="gateway_app.E009",
            )
        )
    return errors


def _layer_group_expiry() -> float:
    """The default channel layer's ``group_expiry`` (channels' own default: a day)."""
    config = (getattr(settings, "CHANNEL_LAYERS", {}) or {}).get("default", {})
    return float((config.get("CONFIG") or {}).get("group_expiry", 86400))


@checks.register()
def check_session_engine(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """Logout closes cookie sockets by session key: an engine that keeps no session on the
    server has none to end, so a logged-out socket would stay open."""
    if settings.SESSION_ENGINE != "django.contrib.sessions.backends.signed_cookies":
        return []
    return [
        checks.Warning(
            "SESSION_ENGINE signed_cookies keeps no session on the server: logging out does "
            "not close that browser's gateway sockets.",
            hint="Use the db, cached_db, cache or file engine; password changes and "
            "deactivation still close cookie sockets.",
            id="gateway_app.W030",
        )
    ]


@checks.register()
def check_layer_signing(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """A Redis channel layer must sign its messages: anybody reaching Redis could forge them."""
    config = (getattr(settings, "CHANNEL_LAYERS", {}) or {}).get("default", {})
    backend = config.get("BACKEND", "")
    if not _redis_layer(backend) or _signed(backend, config.get("CONFIG") or {}):
        return []
    return [
        checks.Warning(
            f"The channel layer {backend!r} does not sign its messages: inter-worker messages"
            " are not authenticated.",
            hint="Anybody who can reach Redis could forge calls to any session. Use "
            "gateway_app.layers.ResilientRedisChannelLayer (as with REDIS_URL by default) "
            f"with serializer_format {SIGNED_FORMAT!r}.",
            id="gateway_app.W015",
        )
    ]


@checks.register(checks.Tags.security)
def check_trusted_origins(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """A ``CSRF_TRUSTED_ORIGINS`` entry with a path (a trailing ``/``) or another scheme
    matches no browser's Origin, so its pages are refused WebSockets (and Django's CSRF)."""
    from .auth.origins import parse_origin

    warnings: list[checks.CheckMessage] = []
    for entry in settings.CSRF_TRUSTED_ORIGINS:
        # A wildcard subdomain is checked as one concrete subdomain.
        concrete = entry.replace("://*.", "://subdomain.", 1) if isinstance(entry, str) else ""
        if "*" in concrete or parse_origin(concrete) is None:
            warnings.append(
                checks.Warning(
                    f"CSRF_TRUSTED_ORIGINS entry {entry!r} matches no browser Origin.",
                    hint="Write it as scheme://host[:port] (http or https, no path, no "
                    "trailing slash), or https://*.example.com for subdomains.",
                    id="gateway_app.W025",
                )
            )
    return warnings


def _redis_layer(backend: str) -> bool:
    """Whether ``backend`` carries messages through Redis (any channels-redis layer)."""
    if backend.startswith("channels_redis."):
        return True
    from channels_redis.core import RedisChannelLayer

    try:
        layer_class = import_string(backend)
    except ImportError:
        return False  # channels reports an unknown backend itself when it is used
    return isinstance(layer_class, type) and issubclass(layer_class, RedisChannelLayer)


def _signed(backend: str, config: dict[str, Any]) -> bool:
    """Whether the Redis layer ``backend`` uses the signed serializer."""
    from channels_redis.core import RedisChannelLayer

    layer_class = import_string(backend)
    if not issubclass(layer_class, RedisChannelLayer):
        return False  # the pub/sub layer has no serializer choice
    default = inspect.signature(layer_class.__init__).parameters.get("serializer_format")
    fmt = config.get("serializer_format", default.default if default is not None else "msgpack")
    return fmt == SIGNED_FORMAT
