"""``manage.py gateway_cleanup``: retention and the per-user quota, from cron."""

import datetime as dt
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from gateway_app.models import GatewaySession, Message, SessionStatus

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db


def stored(user, age_days: float, status=SessionStatus.CLOSED, messages: int = 1) -> str:
    when = timezone.now() - dt.timedelta(days=age_days)
    row = GatewaySession.objects.create(
        user=user, status=status, created_at=when, last_activity=when
    )
    Message.objects.bulk_create(
        Message(session=row, role="user", content=str(i)) for i in range(messages)
    )
    return row.id


def gateway_cleanup(*args: str) -> list[str]:
    stdout = StringIO()
    call_command("gateway_cleanup", *args, stdout=stdout)
    return stdout.getvalue().splitlines()


def remaining() -> set[str]:
    return set(GatewaySession.objects.values_list("id", flat=True))


def test_it_applies_the_retention_setting(alice, limits):
    """Tests that SESSION_RETENTION_DAYS decides what goes by age, with a one-line summary."""
    limits(SESSION_RETENTION_DAYS=30)
    old, recent = stored(alice, 31, messages=3), stored(alice, 29)
    lines = gateway_cleanup()
    assert remaining() == {recent}
    assert not Message.objects.filter(session_id=old).exists()
    assert lines == [
        "gateway_cleanup: deleted 1 session(s) (3 message(s)) idle over 30 days"
        " and 0 session(s) (0 message(s)) over the per-user quota of 1000 (0 user(s))"
    ]


def test_days_overrides_the_setting(alice, limits):
    """Tests that --days replaces SESSION_RETENTION_DAYS for the run."""
    limits(SESSION_RETENTION_DAYS=0)
    stored(alice, 8)
    recent = stored(alice, 6)
    gateway_cleanup("--days", "7")
    assert remaining() == {recent}


def test_it_enforces_the_per_user_quota(alice, bob, limits):
    """Tests that MAX_STORED_SESSIONS_PER_USER is applied to every user."""
    limits(MAX_STORED_SESSIONS_PER_USER=1)
    mine = [stored(alice, age) for age in (3, 2, 1)]
    theirs = [stored(bob, age) for age in (2, 1)]
    lines = gateway_cleanup()
    assert remaining() == {mine[-1], theirs[-1]}
    assert "and 3 session(s) (3 message(s)) over the per-user quota of 1 (2 user(s))" in lines[0]


def test_a_dry_run_deletes_nothing_and_says_what_it_would(alice, limits):
    """Tests that --dry-run reports the figures of a real run and leaves every row."""
    limits(SESSION_RETENTION_DAYS=30, MAX_STORED_SESSIONS_PER_USER=1)
    ids = {stored(alice, 40, messages=2), stored(alice, 2), stored(alice, 1)}
    lines = gateway_cleanup("--dry-run")
    assert remaining() == ids
    assert lines == [
        "gateway_cleanup: would delete 1 session(s) (2 message(s)) idle over 30 days"
        " and 1 session(s) (1 message(s)) over the per-user quota of 1 (1 user(s))"
    ]


def test_with_neither_rule_it_deletes_nothing(alice, limits):
    """Tests that retention 0 and quota 0 keep every row, and say so."""
    limits(SESSION_RETENTION_DAYS=0, MAX_STORED_SESSIONS_PER_USER=0)
    ids = {stored(alice, 4000), stored(alice, 1)}
    lines = gateway_cleanup()
    assert remaining() == ids
    assert lines == [
        "gateway_cleanup: nothing to do (SESSION_RETENTION_DAYS and "
        "MAX_STORED_SESSIONS_PER_USER are 0)"
    ]


def test_open_sessions_stay_however_old(alice, limits):
    """Tests that sessions not closed (live, running, detached) are never deleted."""
    limits(SESSION_RETENTION_DAYS=1, MAX_STORED_SESSIONS_PER_USER=1)
    ids = {stored(alice, 90, status=s) for s in ("live", "running", "detached")}
    gateway_cleanup()
    assert remaining() == ids


def test_negative_days_are_refused(alice):
    """Tests that --days below 0 is a usage error, not a deletion of everything."""
    with pytest.raises(CommandError, match="--days"):
        gateway_cleanup("--days", "-1")


@pytest.mark.django_db(transaction=True)
def test_the_command_exits_0_with_its_summary_on_stdout(tmp_path):
    """Tests that manage.py gateway_cleanup, as cron runs it, exits 0 and prints one line."""
    env = {"HERMES_DB_PATH": str(tmp_path / "db.sqlite3"), "PATH": "/usr/bin:/bin"}
    manage = [sys.executable, str(REPO / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True, cwd=REPO)
    done = subprocess.run(
        [*manage, "gateway_cleanup", "--days", "30"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "gateway_cleanup: deleted 0 session(s) (0 message(s)) idle over 30 days"
        " and 0 session(s) (0 message(s)) over the per-user quota of 1000 (0 user(s))"
    ]
