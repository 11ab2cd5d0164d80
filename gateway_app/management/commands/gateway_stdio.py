"""``manage.py gateway_stdio``: serve the JSON-RPC protocol on stdin/stdout."""

from __future__ import annotations

import asyncio

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from gateway_app.auth.permissions import PERMISSION, may_use_gateway
from gateway_app.rpc.context import Caller
from gateway_app.transport.stdio import serve_process_stdio

DEFAULT_USER = "local"


class Command(BaseCommand):
    help = "Serve the gateway protocol as newline-delimited JSON on stdin/stdout."

    def add_arguments(self, parser):
        parser.add_argument(
            "--user",
            default=DEFAULT_USER,
            help=f"user the session runs as (default: {DEFAULT_USER!r}, created on demand)",
        )

    def handle(self, *args, user: str, **options):
        User = get_user_model()
        if user == DEFAULT_USER:
            account, created = User.objects.get_or_create(username=user)
            if created:
                account.set_unusable_password()
                account.save(update_fields=["password"])
        else:
            account = User.objects.filter(username=user, is_active=True).first()
            if account is None:
                raise CommandError(f"No active user named {user!r}.")
        if not may_use_gateway(account.pk):
            raise CommandError(
                f"User {user!r} lacks the {PERMISSION} permission (REQUIRE_PERMISSION)."
            )
        caller = Caller(account.pk, account.get_username(), account.is_staff)
        asyncio.run(serve_process_stdio(caller))
