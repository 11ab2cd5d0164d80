"""
Slash commands: the catalog, the per-session worker process (``python -m
gateway_app.slash.worker``, no Django) and the parent side that drives it. Third-party commands
register with :func:`command` in a module listed in ``HERMES_GATEWAY["SLASH_COMMANDS"]``. The
package imports only the standard library, so the worker starts without the gateway.
"""

from .registry import command

__all__ = ["command"]
