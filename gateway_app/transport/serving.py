"""
The daphne launcher: ``python -m gateway_app.transport.serving [daphne options] APP`` runs
daphne with ``DAPHNE_ARGS`` and an access log that redacts ``?token=`` (``access_log``). It
ships with the app so a host project serves the gateway the way ``scripts/serve``,
``scripts/deploy.py`` and the live tests do (through ``hermes_site.serving``).
"""

from __future__ import annotations

import sys

#: Daphne drops (close 1006, no handshake) WebSocket messages over its own limit, 1 MiB by
#: default, before the application sees them. Its limit is set above the gateway's
#: ``MAX_FRAME_BYTES`` so that clients meet the gateway's limit and its clean, logged close
#: (4013) instead; daphne's stays as the outer wall that bounds buffering per connection.
WEBSOCKET_MAX_BYTES = 4 * 1024 * 1024

DAPHNE_ARGS: list[str] = [
    "--websocket-max-message-size",
    str(WEBSOCKET_MAX_BYTES),
    "--websocket-max-frame-size",
    str(WEBSOCKET_MAX_BYTES),
]


def main(argv: list[str]) -> None:
    """Run daphne's command line with ``DAPHNE_ARGS`` before ``argv``, its access log
    redacted."""
    from ..adapters.daphne import run_command_line

    run_command_line([*DAPHNE_ARGS, *argv])


if __name__ == "__main__":
    main(sys.argv[1:])
