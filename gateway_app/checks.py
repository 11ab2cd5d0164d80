"""System checks for the gateway's settings (``manage.py check``)."""

from __future__ import annotations

import inspect
import math
from typing import Any
from urllib.parse import urlparse

from django.conf import settings
from django.core import checks
from django.shortcuts import resolve_url
from django.urls import NoReverseMatch, Resolver404, get_script_prefix, resolve, reverse
from django.utils.module_loading import import_string

from .agents import sandbox
from .agents.errors import ExtensionError
from .agents.loading import resolve_agent
from .agents.openai import OpenAIAgent
from .agents.tools import load_tools
from .conf import BY_NAME, OPTIONS, gateway_settings, setting
from .conf.kinds import is_number, parse_networks
from .conf.layers import default_layer, is_redis_layer, layer_redis_url
from .rpc.dispatch import registry as method_registry
from .sessions.cluster.signing import SIGNED_FORMAT
from .slash.installed import command_modules, installed


@checks.register()
def check_gateway_settings(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """Every option by the rules of its kind (gateway_app.conf.options), then the rules that
    tie options together or to this machine."""
    options = gateway_settings()
    errors: list[checks.CheckMessage] = [
        checks.Warning(
            f"HERMES_GATEWAY[{name!r}] is not a known option.",
            hint="See the settings table in the README.",
            id="gateway_app.W001",
        )
        for name in options
        if name not in BY_NAME
    ]
    for option in OPTIONS:
        value = options[option.name]
        failed = option.kind.first_failure(value)
        if failed is not None:
            errors.append(
                checks.Error(
                    f"HERMES_GATEWAY[{option.name!r}] must be {failed.what}, got {value!r}.",
                    hint=f"hermes_site reads it from {option.env}." if option.env else None,
                    id=failed.check_id,
                )
            )
    errors += _check_heartbeat(options)
    errors += _check_live_samples(options)
    group_expiry = _layer_group_expiry()
    refresh = options["GROUP_REFRESH_S"]
    if is_number(refresh) and refresh >= group_expiry:
        errors.append(
            checks.Warning(
                f"HERMES_GATEWAY['GROUP_REFRESH_S'] ({refresh}) is not below the channel "
                f"layer's group_expiry ({group_expiry}).",
                hint="Sockets open longer than group_expiry would stop getting session "
                "events; renew memberships more often.",
                id="gateway_app.W002",
            )
        )
    errors += _check_extensions(options)
    errors += _check_terminal(options)
    errors += _check_message_budgets(options)
    errors += _check_metrics_allow(options)
    return errors


def _valid(options: dict[str, Any], *names: str) -> bool:
    """Whether each option passed its own kind's checks (reported above otherwise)."""
    return all(BY_NAME[name].kind.first_failure(options[name]) is None for name in names)


def _check_message_budgets(options: dict[str, Any]) -> list[checks.CheckMessage]:
    """A prompt the gateway accepts must be storable whole (E081), and one message of the
    largest size should fit the in-memory history budget (W081)."""
    errors: list[checks.CheckMessage] = []
    if not _valid(options, "MAX_PROMPT_CHARS", "MAX_MESSAGE_CHARS", "HISTORY_BYTES"):
        return errors
    prompt, message = options["MAX_PROMPT_CHARS"], options["MAX_MESSAGE_CHARS"]
    if prompt > message:
        errors.append(
            checks.Error(
                f"HERMES_GATEWAY['MAX_PROMPT_CHARS'] ({prompt}) is above "
                f"HERMES_GATEWAY['MAX_MESSAGE_CHARS'] ({message}).",
                hint="An accepted prompt could not be stored whole; raise MAX_MESSAGE_CHARS "
                "or lower MAX_PROMPT_CHARS.",
                id="gateway_app.E081",
            )
        )
    history = options["HISTORY_BYTES"]
    if history < 4 * message:
        errors.append(
            checks.Warning(
                f"HERMES_GATEWAY['HISTORY_BYTES'] ({history}) is below one message of "
                f"MAX_MESSAGE_CHARS ({message}) four-byte characters.",
                hint="Such a message alone would be all a live session keeps in memory (the "
                "agent's whole context); raise HISTORY_BYTES or lower MAX_MESSAGE_CHARS.",
                id="gateway_app.W081",
            )
        )
    return errors


def _check_metrics_allow(options: dict[str, Any]) -> list[checks.CheckMessage]:
    """W070: a METRICS_ALLOW network of every address publishes the metrics to anyone."""
    value = options["METRICS_ALLOW"]
    try:
        networks = parse_networks(value) if isinstance(value, str) else ()
    except ValueError:
        return []  # E070, from the option's kind
    everyone = [str(network) for network in networks if network.prefixlen == 0]
    if not everyone:
        return []
    return [
        checks.Warning(
            f"HERMES_GATEWAY['METRICS_ALLOW'] admits every address ({', '.join(everyone)}).",
            hint="Anyone who reaches the server reads /metrics without logging in; allow "
            "the scraper's network only, or leave it empty and scrape with an API token.",
            id="gateway_app.W070",
        )
    ]


def _check_extensions(options: dict[str, Any]) -> list[checks.CheckMessage]:
    """The AGENT backend and the TOOLS, by the validation that builds them (E003, E050-E054),
    then the openai backend's own settings."""
    errors: list[checks.CheckMessage] = []
    backend: type | None = None
    try:
        backend, _ = resolve_agent(options["AGENT"])
    except ExtensionError as exc:
        errors.append(checks.Error(str(exc), hint=_AGENT_HINT, id=exc.check_id))
    try:
        load_tools(options["TOOLS"])
    except ExtensionError as exc:
        errors.append(checks.Error(str(exc), id=exc.check_id))
    if backend is not None and issubclass(backend, OpenAIAgent):
        errors += _check_openai(options)
    return errors


_AGENT_HINT = "hermes_site reads a backend name from HERMES_AGENT."


#: The check id of each kind of slash-command table problem (gateway_app.slash.registry).
_SLASH_PROBLEM_IDS = {
    "import": "gateway_app.E056",
    "builtin": "gateway_app.E057",
    "duplicate": "gateway_app.E058",
}


@checks.register()
def check_slash_commands(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """Every SLASH_COMMANDS module imports, and no command name is taken twice (a clash is
    otherwise silent: the command registered first wins)."""
    errors = []
    for problem in installed().problems if command_modules() else ():
        if problem.kind == "import":
            msg = f"Slash command module {problem.module!r} does not import: {problem.detail}."
            hint = "Fix the module or remove it from HERMES_GATEWAY['SLASH_COMMANDS']."
        else:
            msg = f"Slash command module {problem.module!r}: {problem.detail}."
            hint = "Give the command another name; the one defined first is kept."
        errors.append(checks.Error(msg, hint=hint, id=_SLASH_PROBLEM_IDS[problem.kind]))
    return errors


@checks.register()
def check_rpc_methods(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """Every RPC_METHODS module imports, and no JSON-RPC method name is registered twice
    (the first registration would answer, silently)."""
    current = method_registry()
    errors = [
        checks.Error(
            f"JSON-RPC method module {module!r} does not import: {detail}.",
            hint="Fix the module or remove it from HERMES_GATEWAY['RPC_METHODS'].",
            id="gateway_app.E056",
        )
        for module, detail in current.import_errors
    ]
    for entry in current.duplicates:
        first = current.methods[entry.name]
        errors.append(
            checks.Error(
                f"JSON-RPC method {entry.name!r} of {entry.module!r} is already registered "
                f"by {first.module!r}.",
                hint="Register the method under another name; the first one answers.",
                id="gateway_app.E059",
            )
        )
    return errors


def _check_terminal(options: dict[str, Any]) -> list[checks.CheckMessage]:
    """The unsandboxed mode's warning, and whether the sandbox works on this machine."""
    mode, network = options["TERMINAL_SANDBOX"], options["TERMINAL_NETWORK"]
    if mode == "none":
        return [
            checks.Warning(
                "The terminal tool runs commands without a sandbox (TERMINAL_SANDBOX = 'none'): "
                "they see the gateway's files, database and processes, as its user.",
                hint="Install bubblewrap and remove TERMINAL_SANDBOX from HERMES_GATEWAY.",
                id="gateway_app.W010",
            )
        ]
    if mode != "bwrap" or not isinstance(network, bool):
        return []  # reported above (E011, E012)
    reason = sandbox.unavailable_reason(sandbox.SandboxConfig(network=network))
    if reason is None:
        return []
    return [
        checks.Error(
            f"The terminal tool is disabled: {reason}.",
            hint="Install the Debian package bubblewrap (and allow user namespaces), "
            "or set TERMINAL_SANDBOX = 'none' to run commands unsandboxed.",
            id="gateway_app.E010",
        )
    ]


#: More samples than this per worker ring is a warning (W075): memory, and each live page poll.
MAX_LIVE_SAMPLES = 20_000


def _check_live_samples(options: dict[str, Any]) -> list[checks.CheckMessage]:
    """The live page's ring holds LIVE_SAMPLE_WINDOW_S / LIVE_SAMPLE_INTERVAL_S samples: at
    least two for a line, not so many that memory and every poll grow large."""
    interval, window = options["LIVE_SAMPLE_INTERVAL_S"], options["LIVE_SAMPLE_WINDOW_S"]
    if not (is_number(interval) and is_number(window) and interval > 0 and window > 0):
        return []  # reported above (E004)
    if window < interval:
        return [
            checks.Error(
                f"HERMES_GATEWAY['LIVE_SAMPLE_WINDOW_S'] ({window}) is below "
                f"HERMES_GATEWAY['LIVE_SAMPLE_INTERVAL_S'] ({interval}).",
                hint="The live page's charts would hold a single sample: no line to draw.",
                id="gateway_app.E075",
            )
        ]
    samples = math.ceil(window / interval)
    if samples <= MAX_LIVE_SAMPLES:
        return []
    return [
        checks.Warning(
            f"HERMES_GATEWAY['LIVE_SAMPLE_WINDOW_S'] / ['LIVE_SAMPLE_INTERVAL_S'] keeps "
            f"{samples} samples per worker (more than {MAX_LIVE_SAMPLES}).",
            hint="Each worker holds them in memory and sends them all to each live page "
            "poll; sample less often.",
            id="gateway_app.W075",
        )
    ]


def _check_heartbeat(options: dict[str, Any]) -> list[checks.CheckMessage]:
    """A host must beat at least twice per HOST_DEAD_AFTER_S, or one late beat kills it."""
    beat, dead_after = options["HEARTBEAT_S"], options["HOST_DEAD_AFTER_S"]
    if not (is_number(beat) and is_number(dead_after) and beat > 0 and dead_after > 0):
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
    config = default_layer(getattr(settings, "CHANNEL_LAYERS", None)) or {}
    return float((config.get("CONFIG") or {}).get("group_expiry", 86400))


@checks.register()
def check_channel_layer(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """Events, sockets and hosts all go through the default channel layer, and the session
    registry must reach the same workers the layer does."""
    config = default_layer(getattr(settings, "CHANNEL_LAYERS", None))
    if config is None:
        return [
            checks.Error(
                "CHANNEL_LAYERS has no 'default' layer: the gateway's sessions, events and "
                "sockets need one.",
                hint="One worker: {'default': {'BACKEND': 'channels.layers."
                "InMemoryChannelLayer'}}; several: gateway_app.layers.ResilientRedisChannelLayer "
                "(hermes_site.settings configures either).",
                id="gateway_app.E040",
            )
        ]
    redis_layer = is_redis_layer(str(config.get("BACKEND", "")))
    configured = setting("REDIS_URL")
    if configured and not redis_layer:
        return [
            checks.Warning(
                f"HERMES_GATEWAY['REDIS_URL'] shares the session registry, but the channel "
                f"layer {config.get('BACKEND')!r} does not reach other workers.",
                hint="Calls forwarded to a session hosted by another worker would never "
                "arrive: use a channels-redis layer on that Redis, or leave REDIS_URL empty.",
                id="gateway_app.W040",
            )
        ]
    if redis_layer and not configured and layer_redis_url(settings.CHANNEL_LAYERS) is None:
        return [
            checks.Error(
                "The Redis channel layer's first host is not a plain URL, so the session "
                "registry cannot share its Redis: set HERMES_GATEWAY['REDIS_URL'].",
                hint="Without it every worker keeps its own registry and serves sessions "
                "another worker hosts. Give the URL with its credentials "
                "(redis://USER:PASSWORD@host:6379/0).",
                id="gateway_app.E043",
            )
        ]
    return []


@checks.register(checks.Tags.urls)
def check_login_url(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """The chat page sends anonymous visitors to ``settings.LOGIN_URL``: where that names
    no view of this project (Django's default in a fresh project), each visitor meets a 404."""
    try:
        reverse("gateway_app:chat")
    except NoReverseMatch:
        return []  # the project routes no chat page
    try:
        target = _login_path(settings.LOGIN_URL)
        if target is None:
            return []
        resolve(target)
    except (NoReverseMatch, Resolver404):
        return [
            checks.Warning(
                f"LOGIN_URL ({settings.LOGIN_URL!r}) leads to no page of this project: "
                "the gateway's chat page sends anonymous visitors there.",
                hint="Route a login view there (django.contrib.auth.urls with a "
                "registration/login.html template), or set LOGIN_URL = 'admin:login' "
                "when the admin is routed.",
                id="gateway_app.W044",
            )
        ]
    return []


def _login_path(login_url: Any) -> str | None:
    """The path of this site ``LOGIN_URL`` leads to, or None for a URL of another site;
    ``NoReverseMatch`` for a URL name no route has."""
    url = urlparse(str(resolve_url(login_url)))
    if url.scheme or url.netloc:
        return None
    prefix = get_script_prefix()
    path = url.path
    return "/" + path[len(prefix) :] if path.startswith(prefix) else path


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
    config = default_layer(getattr(settings, "CHANNEL_LAYERS", None)) or {}
    backend = config.get("BACKEND", "")
    if not is_redis_layer(backend) or _signed(backend, config.get("CONFIG") or {}):
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


def _signed(backend: str, config: dict[str, Any]) -> bool:
    """Whether the Redis layer ``backend`` uses the signed serializer."""
    from channels_redis.core import RedisChannelLayer

    layer_class = import_string(backend)
    if not issubclass(layer_class, RedisChannelLayer):
        return False  # the pub/sub layer has no serializer choice
    default = inspect.signature(layer_class.__init__).parameters.get("serializer_format")
    fmt = config.get("serializer_format", default.default if default is not None else "msgpack")
    return fmt == SIGNED_FORMAT


#: Backends the store's and the token lookup's raw SQL is tested on.
TESTED_ENGINES = ("django.db.backends.sqlite3", "django.db.backends.postgresql")


@checks.register()
def check_database(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """The default database (not tagged ``database``: that would need ``--database``)."""
    return database_errors(settings.DATABASES.get("default", {}))


def database_errors(database: dict[str, Any]) -> list[checks.CheckMessage]:
    """The database is one the gateway is tested on, with what it needs installed: a
    worker would otherwise fail only at its first query."""
    engine = database.get("ENGINE", "")
    if engine not in TESTED_ENGINES:
        return [
            checks.Error(
                f"The default database's engine {engine!r} is not one the gateway runs on.",
                hint="Use PostgreSQL or SQLite (DATABASE_URL, see the README).",
                id="gateway_app.E060",
            )
        ]
    pool = (database.get("OPTIONS") or {}).get("pool")
    if engine != "django.db.backends.postgresql":
        return []
    errors: list[checks.CheckMessage] = []
    try:
        import psycopg  # noqa: F401

        if pool:
            import psycopg_pool  # noqa: F401
    except ImportError as exc:
        errors.append(
            checks.Error(
                f"PostgreSQL needs psycopg 3{' and psycopg_pool' if pool else ''}: {exc}.",
                hint="pip install -r requirements.txt (psycopg[binary,pool]).",
                id="gateway_app.E061",
            )
        )
    if pool and database.get("CONN_MAX_AGE", 0) != 0:
        errors.append(
            checks.Error(
                "The default database has a connection pool and CONN_MAX_AGE above 0.",
                hint="Django refuses persistent connections beside its pool: set it to 0.",
                id="gateway_app.E062",
            )
        )
    return errors
