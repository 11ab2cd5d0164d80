"""``manage.py gateway_drain <worker>``: have a named worker drain gracefully and stop."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from ...sessions.control import request_drain


class Command(BaseCommand):
    help = (
        "Drain the worker named WORKER (its HERMES_WORKER_NAME, e.g. worker-0 under "
        "scripts/deploy.py): it takes no new sessions, lets running turns finish (up to "
        "DRAIN_TIMEOUT_S), leaves its sessions resumable elsewhere, closes its sockets with "
        "1012 and exits. Needs the shared Redis registry."
    )

    def add_arguments(self, parser):
        parser.add_argument("worker", help="the worker's name, as the admin's live page shows it")

    def handle(self, *args, worker: str, **options):
        channels = request_drain(worker)
        if not channels:
            raise CommandError(f"no live worker named {worker!r} in the registry")
        self.stdout.write(f"asked {worker} to drain ({len(channels)} host(s))")
