"""``manage.py gateway_chat``: the terminal chat, over WebSocket or a spawned gateway_stdio."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from gateway_app.client import connect, connect_stdio
from gateway_app.client.chat import run_chat

TOKEN_ENV = "HERMES_TOKEN"


class Command(BaseCommand):
    help = "Chat with the gateway in this terminal (WebSocket with a token, or --stdio)."

    def add_arguments(self, parser):
        parser.add_argument("--url", default="ws://127.0.0.1:8000/api/ws", help="gateway URL")
        parser.add_argument(
            "--token", default=None, help=f"API token (default: ${TOKEN_ENV}, kept out of ps)"
        )
        parser.add_argument(
            "--stdio", action="store_true", help="spawn manage.py gateway_stdio instead"
        )
        parser.add_argument("--user", default=None, help="the --user of gateway_stdio")
        parser.add_argument("--title", default="terminal", help="title of the new session")

    def handle(self, *args, url, token, stdio, user, title, **options):
        if stdio:
            argv = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "gateway_stdio"]
            if user:
                argv += ["--user", user]
            connector = connect_stdio(argv, cwd=str(settings.BASE_DIR))
        else:
            token = token or os.environ.get(TOKEN_ENV)
            if not token:
                raise CommandError(f"--token (or ${TOKEN_ENV}) is needed without --stdio")
            connector = connect(url, token)
        # The chat shows the client's warnings (lost sessions, reconnects) as lines of its own.
        logging.getLogger("gateway_app.client").setLevel(logging.ERROR)
        # run_chat has said why it failed on stderr; only the exit status is left to give.
        if status := asyncio.run(run_chat(connector, title=title)):
            raise SystemExit(status)
