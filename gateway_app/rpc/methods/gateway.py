"""Gateway-level methods: no session involved."""

from __future__ import annotations

from typing import Any

from ...slash.commands import catalog, complete
from ...slash.installed import installed
from ..context import CallContext
from ..dispatch import method
from ..params import get_str


@method("gateway.ping")
async def ping(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    """Liveness check."""
    return {"pong": True}


@method("commands.catalog")
async def commands_catalog(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    """Every slash command with its description and usage."""
    return {"commands": catalog(installed().specs)}


@method("complete.slash")
async def complete_slash(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    """Complete a partial slash command (text without a leading "/" completes to nothing)."""
    text = get_str(params, "text", max_length=1000)
    return {"completions": complete(text, installed().specs)}
