"""
The slash commands of this gateway process: the built-ins plus those of the modules in
``HERMES_GATEWAY["SLASH_COMMANDS"]``, imported here too so that ``commands.catalog`` and
``complete.slash`` answer without a worker.
"""

from __future__ import annotations

from functools import lru_cache

from ..conf import setting
from .registry import Table, build_table


def command_modules() -> tuple[str, ...]:
    """The configured command modules; none while the setting is invalid (a check reports it)."""
    modules = setting("SLASH_COMMANDS")
    if not isinstance(modules, list | tuple) or not all(isinstance(m, str) for m in modules):
        return ()
    return tuple(modules)


def installed() -> Table:
    """The effective command table for the current settings (built once per module list)."""
    return _table_for(command_modules())


@lru_cache(maxsize=8)
def _table_for(modules: tuple[str, ...]) -> Table:
    return build_table(modules)
