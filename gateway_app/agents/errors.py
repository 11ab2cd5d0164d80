"""The error a bad ``AGENT`` or ``TOOLS`` setting raises, with the system check id that
reports it, so that building and checking share one validation."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured


class ExtensionError(ImproperlyConfigured):
    """A configured agent backend or tool that cannot be used; ``check_id`` names the check."""

    def __init__(self, message: str, check_id: str) -> None:
        super().__init__(message)
        self.check_id = check_id
