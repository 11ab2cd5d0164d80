"""
The store's, the listing's and the token lookup's database tests, run again on the run's
real PostgreSQL: their raw SQL (placeholders, quoting), column converters (the property
test against ``get_db_prep_save``), datetimes with time zones, booleans and JSON must agree
with the ORM there too. Each runs in a pytest of its own whose ``DATABASE_URL`` names it.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.support.servers import PYTHON, REPO, base_env

pytestmark = pytest.mark.live

#: The tests whose SQL or values depend on the backend (a whole file costs a flush per test).
ON_POSTGRESQL = [
    "tests/sessions/test_store.py::test_column_converters_agree_with_get_db_prep_save",
    "tests/sessions/test_store.py::test_changed_rows_keep_every_field_type",
    "tests/sessions/test_store.py::test_a_batch_of_new_sessions_and_messages_is_written_whole",
    "tests/sessions/test_store.py::test_changes_to_a_waiting_row_merge_into_one_write",
    "tests/sessions/test_store.py::test_text_with_lone_surrogates_is_stored_with_replacement_characters",
    "tests/sessions/test_listing.py::test_pages_walk_the_whole_history_once",
    "tests/sessions/test_listing.py::test_query_matches_a_title_substring_ignoring_case",
    "tests/auth/test_lookup.py::test_the_lookup_builds_the_token_and_user_the_orm_builds",
    "tests/auth/test_lookup.py::test_the_lookup_finds_no_unknown_or_revoked_token",
]

#: A naive datetime reaching a DateTimeField is a RuntimeWarning: fail on it.
STRICT = ["-W", "error::RuntimeWarning"]


def test_the_store_listing_and_lookup_tests_pass_on_postgresql(postgres_server, tmp_path):
    """Tests that the backend-dependent database tests pass with DATABASE_URL naming the
    PostgreSQL server, and ran there: pytest-django's test database, kept (--reuse-db),
    is on it afterwards."""
    env = base_env(
        tmp_path / "unused.sqlite3",
        DATABASE_URL=postgres_server.url("hermes_unit"),
        DJANGO_SETTINGS_MODULE="hermes_site.test_settings",
    )
    result = subprocess.run(
        [
            PYTHON,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-W",
            "error::RuntimeWarning",
            *ON_POSTGRESQL,
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert f"{len(ON_POSTGRESQL)} passed" in result.stdout
    found = "SELECT datname FROM pg_database WHERE datname = 'test_hermes_unit'"
    assert postgres_server.execute(found) == [("test_hermes_unit",)]
