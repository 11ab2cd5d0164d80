"""``manage.py gateway_admin``: make sure an admin account exists for the dashboard."""

from __future__ import annotations

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Create the superuser 'admin' when no superuser exists yet; its password is "
        "HERMES_ADMIN_PASSWORD (never printed) or a random one printed once. Reset it with "
        "'manage.py changepassword admin'."
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, username: str, **options):
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            return
        given = os.environ.get("HERMES_ADMIN_PASSWORD")
        password = given or secrets.token_urlsafe(12)
        User.objects.create_superuser(username, f"{username}@localhost", password)
        if given:
            # The operator knows it; echoing it would put it in logs and terminal scrollback.
            self.stdout.write(
                f"Created superuser {username!r} with the password in HERMES_ADMIN_PASSWORD."
            )
        else:
            self.stdout.write(
                f"Created superuser {username!r} with password {password!r} (shown once; "
                f"reset with 'manage.py changepassword {username}')."
            )
