"""Tools a project might write, for the TOOLS setting's tests. Each records its runs."""

from __future__ import annotations

from typing import Any

from gateway_app.agents.tools import Tool, ToolContext

#: (tool name, session id, username, arguments) of every run, oldest first.
RUNS: list[tuple[str, str, str, dict[str, Any]]] = []


class ShoutTool(Tool):
    """Upper-cases its text; reports progress once."""

    name = "shout"
    description = "Upper-case a text."
    parameters = {
        "type": "object",
        "properties": {"text": {"type": "string"}},
        "required": ["text"],
    }

    def describe(self, arguments: dict[str, Any]) -> str:
        return f"Shout {arguments['text']!r}"

    async def run(self, context: ToolContext, arguments: dict[str, Any]) -> str:
        RUNS.append((self.name, context.session_id, context.user.username, arguments))
        await context.progress("shouting")
        return arguments["text"].upper()


class QuietTool(ShoutTool):
    """Asks approval only when the call is loud."""

    name = "quiet"

    def needs_approval(self, arguments: dict[str, Any]) -> bool:
        return bool(arguments.get("loud"))


class SecretTool(ShoutTool):
    """Needs a permission ordinary users lack."""

    name = "secret"
    permission = "auth.delete_user"


class SecondTerminal(ShoutTool):
    """Takes a name another tool has."""

    name = "terminal"


class ClarifyTool(ShoutTool):
    """Takes the name the openai backend keeps for itself."""

    name = "clarify"


class StringSchemaTool(ShoutTool):
    """Its parameters are not a JSON Schema object."""

    name = "string_schema"
    parameters = {"type": "string"}


class NotATool:
    """Importable, but not a Tool subclass."""
