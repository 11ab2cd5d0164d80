"""``manage.py gateway_admin``: the first superuser, and a password printed only if made up."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def gateway_admin() -> str:
    stdout = StringIO()
    call_command("gateway_admin", stdout=stdout)
    return stdout.getvalue()


def test_password_from_the_environment_is_never_printed(monkeypatch):
    """Tests that a password given in HERMES_ADMIN_PASSWORD is used but not echoed."""
    monkeypatch.setenv("HERMES_ADMIN_PASSWORD", "s3cret-from-env")
    output = gateway_admin()
    assert "s3cret-from-env" not in output
    assert "HERMES_ADMIN_PASSWORD" in output
    assert get_user_model().objects.get(username="admin").check_password("s3cret-from-env")


def test_generated_password_is_printed_once(monkeypatch):
    """Tests that a generated password is printed when made, and nothing on the next run."""
    monkeypatch.delenv("HERMES_ADMIN_PASSWORD", raising=False)
    output = gateway_admin()
    admin = get_user_model().objects.get(username="admin")
    printed = [
        word.strip("'.") for word in output.split() if admin.check_password(word.strip("'."))
    ]
    assert len(printed) == 1
    assert gateway_admin() == ""
