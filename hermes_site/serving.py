"""
Options every daphne launch of the gateway uses: ``scripts/serve``, ``scripts/deploy.py`` and
the live tests. ``python -m hermes_site.serving`` prints them for shell scripts.
"""

from __future__ import annotations

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

if __name__ == "__main__":
    print(" ".join(DAPHNE_ARGS))
