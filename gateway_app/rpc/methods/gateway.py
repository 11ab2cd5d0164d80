"""Gateway-level methods: no session involved."""

from __future__ import annotations

from typing import Any

from ...slash.commands import catalog, complete
from ...slash.installed import installed
from ..context import CallContext
from ..dispatch import method
from ..params import get_str
from ..schema import array, obj, string

COMMAND = obj(
    {
        "name": string("the command with its slash, e.g. /help"),
        "description": string(),
        "usage": string("e.g. /title <text>"),
    },
    required=("name", "description", "usage"),
)


@method("gateway.ping", result=obj({"pong": {"const": True}}, required=("pong",)))
async def ping(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    """Liveness check."""
    return {"pong": True}


@method(
    "commands.catalog",
    result=obj({"commands": array(COMMAND)}, required=("commands",)),
)
async def commands_catalog(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    """Every slash command with its description and usage."""
    return {"commands": catalog(installed().specs)}


@method(
    "complete.slash",
    params=obj({"text": string("a partial command, e.g. /he", maxLength=1000)}, required=("text",)),
    result=obj({"completions": array(string())}, required=("completions",)),
)
async def complete_slash(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    """Complete a partial slash command (text without a leading "/" completes to nothing)."""
    text = get_str(params, "text", max_length=1000)
    return {"completions": complete(text, installed().specs)}
