"""Admin logins are throttled per username and address: guessing locks out only the guesser."""

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db

LOGIN = reverse("admin:login")
PASSWORD = "the-right-password"


@pytest.fixture
def staff(db):
    User = get_user_model()
    User.objects.create_user("root", password=PASSWORD, is_staff=True, is_superuser=True)
    User.objects.create_user("other", password=PASSWORD, is_staff=True)


def log_in(username: str, password: str, address: str = "10.0.0.1") -> int:
    """POST the admin login form from ``address``; the status (302 is a success)."""
    client = Client(REMOTE_ADDR=address)
    response = client.post(LOGIN, {"username": username, "password": password, "next": "/admin/"})
    return response.status_code


def guess(username: str, address: str = "10.0.0.1") -> None:
    """As many wrong passwords as lock a username and address out; the last one does."""
    limit = settings.AXES_FAILURE_LIMIT
    statuses = [log_in(username, "wrong", address) for _ in range(limit)]
    assert statuses == [200] * (limit - 1) + [429]  # the form again with its error, then 429


def test_right_password_logs_in(staff):
    """Tests that the admin login works with the right password (the throttle's baseline)."""
    assert log_in("root", PASSWORD) == 302


def test_right_password_is_refused_after_the_failure_limit(staff):
    """Tests that after the failure limit even the right password gets 429 in the cool-off."""
    guess("root")
    assert log_in("root", PASSWORD) == 429


def test_lockout_spares_the_same_user_from_another_address(staff):
    """Tests that guessing from one address does not lock the user out everywhere."""
    guess("root", "10.0.0.1")
    assert log_in("root", PASSWORD, "10.0.0.2") == 302


def test_lockout_spares_another_user_from_the_same_address(staff):
    """Tests that guessing one username does not lock another out from that address."""
    guess("root", "10.0.0.1")
    assert log_in("other", PASSWORD, "10.0.0.1") == 302


def test_a_success_clears_the_failure_count(staff):
    """Tests that failures before a successful login do not count towards the next lockout."""
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        log_in("root", "wrong")
    assert log_in("root", PASSWORD) == 302
    assert log_in("root", "wrong") == 200
    assert log_in("root", PASSWORD) == 302
