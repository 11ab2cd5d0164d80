"""
``DATABASE_URL`` to a Django ``DATABASES`` entry: SQLite (the embedded default) or PostgreSQL
through psycopg 3 with a connection pool. A URL the gateway cannot use stops the settings,
never falling back to another database: workers on different databases would split the state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

#: Per worker process. The ORM runs on database_sync_to_async's one thread (plus a few
#: short sync_to_async calls), so a worker seldom holds more than one or two at a time.
DEFAULT_POOL: dict[str, Any] = {"min_size": 1, "max_size": 4, "timeout": 10.0}

#: libpq connection parameters a URL may carry (others are typos, refused).
LIBPQ_PARAMETERS = frozenset(
    {
        "application_name",
        "channel_binding",
        "connect_timeout",
        "gssencmode",
        "keepalives",
        "keepalives_count",
        "keepalives_idle",
        "keepalives_interval",
        "options",
        "passfile",
        "sslcert",
        "sslcrl",
        "sslkey",
        "sslmode",
        "sslrootcert",
        "target_session_attrs",
        "tcp_user_timeout",
    }
)

POSTGRES_SCHEMES = frozenset({"postgres", "postgresql"})


def sqlite_database(path: str) -> dict[str, Any]:
    """The SQLite entry for the file at ``path``, shared by the workers of one machine."""
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        # Several daphne workers may share one SQLite file; wait for the lock instead of
        # failing. WAL lets readers run beside the writer and makes commits cheap.
        "OPTIONS": {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
        # database_sync_to_async runs ORM work on one thread: keep its connection open
        # rather than reconnecting per call (it is still closed when broken or expired).
        "CONN_MAX_AGE": 600,
        "CONN_HEALTH_CHECKS": True,
    }


def database_from_url(url: str | None, sqlite_path: Path | str) -> dict[str, Any]:
    """
    The ``DATABASES["default"]`` entry ``url`` names: ``sqlite:///relative/file``,
    ``sqlite:////absolute/file`` or ``postgres://user:password@host:port/name?params``; no
    URL is the SQLite file at ``sqlite_path``. ``ImproperlyConfigured`` says what is wrong.
    """
    if url is None or not url.strip():
        return sqlite_database(str(sqlite_path))
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise _refused(url, f"its port is not a number from 1 to 65535 ({exc})") from None
    query = _query(url, parts.query)
    if parts.scheme == "sqlite":
        if parts.netloc or len(parts.path) < 2:
            raise _refused(url, "names no file: use sqlite:///relative or sqlite:////absolute")
        _refuse_unknown(url, query, frozenset())
        return sqlite_database(unquote(parts.path[1:]))
    if parts.scheme not in POSTGRES_SCHEMES:
        raise _refused(url, f"has an unsupported scheme {parts.scheme!r}: use postgres or sqlite")
    name = unquote(parts.path[1:])
    if not name or "/" in name:
        raise _refused(url, "names no database: end it with /NAME")
    pool = _pool(url, query)
    _refuse_unknown(url, query, LIBPQ_PARAMETERS)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        # A percent-encoded path (%2Fvar%2Frun%2Fpostgresql) is a Unix socket directory.
        "HOST": unquote(parts.hostname or "") if "%" not in parts.netloc else _host(parts.netloc),
        "PORT": str(port) if port else "",
        "OPTIONS": {**({"pool": pool} if pool else {}), **query},
        # Django refuses persistent connections beside its pool: the pool keeps them.
        "CONN_MAX_AGE": 0 if pool else 600,
        # With the pool: a connection is checked as it is handed out (after a server restart).
        "CONN_HEALTH_CHECKS": True,
    }


def _host(netloc: str) -> str:
    """The host part of ``netloc`` percent-decoded, case kept (a socket directory)."""
    host = netloc.rpartition("@")[2]
    return unquote(host.rpartition(":")[0] if host.count(":") == 1 else host)


def _query(url: str, query: str) -> dict[str, str]:
    try:
        return dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))
    except ValueError:
        raise _refused(url, "has a query that is not name=value&...") from None


def _pool(url: str, query: dict[str, str]) -> dict[str, Any] | None:
    """The pool options the query asks for (removed from it); ``None`` for pool=off."""
    switch = query.pop("pool", "on")
    if switch not in ("on", "off"):
        raise _refused(url, "has pool= other than on or off")
    pool = dict(DEFAULT_POOL)
    for key, kind in (("min_size", int), ("max_size", int), ("timeout", float)):
        raw = query.pop(f"pool_{key}", None)
        if raw is None:
            continue
        try:
            pool[key] = kind(raw)
        except ValueError:
            raise _refused(url, f"has pool_{key}={raw!r}, not a number") from None
    if pool["max_size"] < 1:
        raise _refused(url, "has pool_max_size below 1")
    if not 0 <= pool["min_size"] <= pool["max_size"]:
        raise _refused(url, "has pool_min_size outside 0..pool_max_size")
    if not pool["timeout"] > 0:
        raise _refused(url, "has pool_timeout not above 0")
    return None if switch == "off" else pool


def _refuse_unknown(url: str, query: dict[str, str], known: frozenset[str]) -> None:
    for name in query:
        if name not in known:
            raise _refused(url, f"has an unknown parameter {name!r}")


def _refused(url: str, problem: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"DATABASE_URL {redact(url)} {problem}")


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``, for messages and logs."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.partition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}{sep}{userinfo.partition(':')[0]}:***@{host}"
