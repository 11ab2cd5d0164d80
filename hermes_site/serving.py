"""
Every daphne launch of the demo (``scripts/serve``, ``scripts/deploy.py``, the live tests)
runs ``python -m hermes_site.serving [daphne options] APP``: the app's launcher,
``gateway_app.transport.serving`` (daphne's options, ``?token=`` redacted in its log).
"""

import sys

from gateway_app.transport.serving import DAPHNE_ARGS, WEBSOCKET_MAX_BYTES, main

__all__ = ["DAPHNE_ARGS", "WEBSOCKET_MAX_BYTES", "main"]

if __name__ == "__main__":
    main(sys.argv[1:])
