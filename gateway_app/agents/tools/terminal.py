"""
The built-in ``terminal`` tool: one approved shell command in the session's sandboxed
scratch directory (``runner.py``), for owners with the ``gateway_app.use_terminal`` permission.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ...conf import setting
from .. import sandbox
from .base import Tool, ToolContext
from .runner import run_terminal

logger = logging.getLogger(__name__)

PERMISSION = "gateway_app.use_terminal"
NOT_PERMITTED = (
    "not permitted: this account may not run commands with the terminal tool "
    f"(it needs the {PERMISSION} permission)"
)


class TerminalTool(Tool):
    """Runs a shell command the user approved; each distinct command is approved anew."""

    name = "terminal"
    description = "Run a shell command (the user approves it first)."
    parameters = {
        "type": "object",
        "properties": {"command": {"type": "string"}},
        "required": ["command"],
    }
    permission = PERMISSION
    denied_result = "denied: the user did not allow this command"

    def describe(self, arguments: dict[str, Any]) -> str:
        return f"Run command: {arguments['command']}"

    def invalid(self, arguments: dict[str, Any]) -> str | None:
        command = arguments.get("command")
        return None if isinstance(command, str) and command.strip() else "no command"

    def not_permitted(self) -> str:
        return NOT_PERMITTED

    async def unavailable(self) -> str | None:
        config = sandbox.SandboxConfig.from_settings()
        reason = await asyncio.to_thread(sandbox.unavailable_reason, config)
        if reason is None:
            return None
        logger.error("terminal tool disabled: %s", reason)
        return f"error: the terminal tool is disabled: {reason}"

    async def run(self, context: ToolContext, arguments: dict[str, Any]) -> str:
        return await run_terminal(
            arguments["command"],
            scratch=await context.scratch(),
            timeout=setting("TERMINAL_TIMEOUT_S"),
            output_limit=setting("TERMINAL_OUTPUT_LIMIT"),
            config=sandbox.SandboxConfig.from_settings(),
        )
