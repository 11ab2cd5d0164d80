"""``manage.py check`` on the database settings DATABASE_URL produced, and settings.py
refusing a DATABASE_URL it cannot use."""

import builtins
import runpy
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from gateway_app.checks import check_database, database_errors
from hermes_site.database import database_from_url

SETTINGS_FILE = Path(__file__).resolve().parents[1] / "hermes_site" / "settings.py"
POSTGRES = database_from_url("postgres://u@h/db", "unused")


def ids(messages):
    return sorted(message.id for message in messages)


def test_the_embedded_sqlite_and_a_pooled_postgresql_pass():
    """Tests that the settings' database and a pooled PostgreSQL raise nothing."""
    assert check_database(None) == []
    assert database_errors(POSTGRES) == []


def test_a_backend_the_gateway_was_not_tested_on_is_an_error():
    """Tests that a default database neither SQLite nor PostgreSQL (the raw SQL of the
    store and the token lookup is tested on those two) is E060."""
    mysql = {**POSTGRES, "ENGINE": "django.db.backends.mysql"}
    assert ids(database_errors(mysql)) == ["gateway_app.E060"]


def test_postgresql_without_psycopg_3_and_its_pool_is_an_error(monkeypatch):
    """Tests that PostgreSQL with psycopg 3 or psycopg_pool missing is E061 now, not a
    failure at the first query of a running worker."""
    real_import = builtins.__import__

    def without_pool(name, *args, **kwargs):
        if name == "psycopg_pool":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_pool)
    assert ids(database_errors(POSTGRES)) == ["gateway_app.E061"]


def test_a_pool_beside_persistent_connections_is_an_error():
    """Tests that a pool with CONN_MAX_AGE above 0 (which Django refuses only at the first
    connection) is E062."""
    assert ids(database_errors({**POSTGRES, "CONN_MAX_AGE": 60})) == ["gateway_app.E062"]


def test_an_unusable_database_url_stops_the_settings(monkeypatch):
    """Tests that settings.py refuses a bad DATABASE_URL by name instead of using SQLite."""
    monkeypatch.setenv("DATABASE_URL", "postgress://u@h/db")
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL postgress://u@h/db has an"):
        runpy.run_path(str(SETTINGS_FILE))


def test_database_url_reaches_the_settings(monkeypatch):
    """Tests that a good DATABASE_URL is what DATABASES["default"] becomes."""
    monkeypatch.setenv("DATABASE_URL", "postgres://u@h/db")
    assert runpy.run_path(str(SETTINGS_FILE))["DATABASES"] == {"default": POSTGRES}
