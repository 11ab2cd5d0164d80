"""
Live sessions. Each live session belongs to one worker, its host, which alone mutates it:
attach/detach with epochs, turns, the slash worker and the one teardown.
"""

from .host import SessionHost, get_host, reset_host

__all__ = ["SessionHost", "get_host", "reset_host"]
