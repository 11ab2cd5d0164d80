"""DATABASE_URL: which database the settings select, and how a bad URL is refused."""

from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from hermes_site.database import DEFAULT_POOL, database_from_url

FALLBACK = Path("/srv/hermes/db.sqlite3")


def test_no_url_is_the_embedded_sqlite_file():
    """Tests that without DATABASE_URL the default is the SQLite file at the fallback path."""
    config = database_from_url(None, FALLBACK)
    assert config["ENGINE"] == "django.db.backends.sqlite3"
    assert config["NAME"] == str(FALLBACK)
    assert config["CONN_MAX_AGE"] == 600


def test_an_empty_url_is_the_embedded_sqlite_file_too():
    """Tests that DATABASE_URL set to nothing (a blank line in an env file) means no URL."""
    assert database_from_url("  ", FALLBACK) == database_from_url(None, FALLBACK)


def test_a_sqlite_url_names_its_file_relative_or_absolute():
    """Tests that sqlite:///rel is a relative path and sqlite:////abs an absolute one."""
    assert database_from_url("sqlite:///data/gw.sqlite3", FALLBACK)["NAME"] == "data/gw.sqlite3"
    assert database_from_url("sqlite:////var/lib/gw.sqlite3", FALLBACK)["NAME"] == (
        "/var/lib/gw.sqlite3"
    )


def test_a_postgres_url_selects_psycopg_with_a_pool_and_no_persistent_connections():
    """Tests that postgres:// gives the PostgreSQL backend with its parts decoded, a
    connection pool and CONN_MAX_AGE 0 (Django refuses a pool beside persistent ones)."""
    config = database_from_url("postgres://hermes:p%40ss%3Aw@db.internal:6543/gateway", FALLBACK)
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert (config["NAME"], config["USER"], config["PASSWORD"]) == ("gateway", "hermes", "p@ss:w")
    assert (config["HOST"], config["PORT"]) == ("db.internal", "6543")
    assert config["CONN_MAX_AGE"] == 0
    assert config["OPTIONS"]["pool"]["max_size"] == DEFAULT_POOL["max_size"]


def test_postgresql_is_the_same_scheme_and_a_socket_directory_may_be_the_host():
    """Tests that postgresql:// is accepted and a percent-encoded path is a socket host."""
    config = database_from_url("postgresql://%2Fvar%2Frun%2Fpostgresql/gateway", FALLBACK)
    assert (config["HOST"], config["PORT"], config["USER"]) == ("/var/run/postgresql", "", "")


def test_pool_sizes_and_libpq_parameters_come_from_the_query():
    """Tests that pool_* parameters size the pool and known libpq ones go to the driver."""
    config = database_from_url(
        "postgres://u@h/db?pool_min_size=1&pool_max_size=8&pool_timeout=2.5"
        "&sslmode=verify-full&application_name=gw",
        FALLBACK,
    )
    pool = config["OPTIONS"].pop("pool")
    assert (pool["min_size"], pool["max_size"], pool["timeout"]) == (1, 8, 2.5)
    assert config["OPTIONS"] == {"sslmode": "verify-full", "application_name": "gw"}


def test_pool_off_keeps_persistent_connections_instead():
    """Tests that pool=off (for a pgbouncer in front) gives no pool and persistent,
    health-checked connections."""
    config = database_from_url("postgres://u@h/db?pool=off", FALLBACK)
    assert "pool" not in config["OPTIONS"]
    assert (config["CONN_MAX_AGE"], config["CONN_HEALTH_CHECKS"]) == (600, True)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql://u@h/db", "unsupported scheme 'mysql'"),
        ("just-a-path.sqlite3", "unsupported scheme ''"),
        ("postgres://u@h", "names no database"),
        ("postgres://u@h/a/b", "names no database"),
        ("postgres://u@h:99999/db", "port"),
        ("postgres://u@h:http/db", "port"),
        ("sqlite://", "names no file"),
        ("sqlite://host/file", "names no file"),
        ("postgres://u@h/db?pool_max_size=0", "pool_max_size"),
        ("postgres://u@h/db?pool_max_size=two", "pool_max_size"),
        ("postgres://u@h/db?pool_min_size=5&pool_max_size=2", "pool_min_size"),
        ("postgres://u@h/db?pool_timeout=-1", "pool_timeout"),
        ("postgres://u@h/db?sslmdoe=require", "unknown parameter 'sslmdoe'"),
        ("postgres://u@h/db?pool=maybe", "pool"),
        ("sqlite:///x.db?sslmode=require", "unknown parameter 'sslmode'"),
    ],
)
def test_a_bad_url_is_improperly_configured_saying_what_is_wrong(url, says):
    """Tests that a URL the gateway cannot use stops the settings with a message naming the
    problem, never falling back to another database."""
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL") as raised:
        database_from_url(url, FALLBACK)
    assert says in str(raised.value)


def test_the_password_is_not_in_the_error():
    """Tests that a refused URL's password is not repeated in the message (logs)."""
    with pytest.raises(ImproperlyConfigured) as raised:
        database_from_url("postgres://u:hunter2@h/db?sslmdoe=1", FALLBACK)
    assert "hunter2" not in str(raised.value)
