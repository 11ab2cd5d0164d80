"""
The interface of a tool the model may call. A backend offers the configured tools
(``HERMES_GATEWAY["TOOLS"]``) to its model and runs a call with ``Turn.call_tool``, which
checks ``permission`` on the host, asks approval when ``needs_approval`` says so, then
awaits ``run``.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ..base import TurnUser


@dataclass(frozen=True, slots=True)
class ToolContext:
    """What one running tool call may use. ``scratch()`` creates (once) and returns the
    session's private directory, removed with the session; ``progress(text)`` sends a
    ``tool.progress`` event to the session's clients."""

    session_id: str
    user: TurnUser
    tool_id: str
    scratch: Callable[[], Awaitable[Path]]
    progress: Callable[[str], Awaitable[None]]


class Tool(ABC):
    """A tool: one instance per worker, built without arguments. ``parameters`` is the JSON
    Schema object of its arguments (sent to the model as a function tool); ``permission``,
    when set, is a Django permission (``app_label.codename``) the session's owner must hold."""

    name: ClassVar[str]
    description: ClassVar[str]
    parameters: ClassVar[dict[str, Any]] = {"type": "object", "properties": {}}
    #: True, False, or a method taking the arguments (see ``approval_needed``).
    needs_approval: ClassVar[bool | Callable[..., bool]] = True
    permission: ClassVar[str] = ""
    #: The result when the user denies the call.
    denied_result: ClassVar[str] = "denied: the user did not allow this call"

    def approval_needed(self, arguments: dict[str, Any]) -> bool:
        """Whether this call must be approved by the user first."""
        # A method defined as ``needs_approval`` is bound here: called with the arguments.
        needs = self.needs_approval
        return bool(needs(arguments)) if callable(needs) else bool(needs)

    def describe(self, arguments: dict[str, Any]) -> str:
        """The approval request's description of this call; "session" approval covers
        exactly this description, so it must name everything the call will do."""
        return f"Run {self.name}: {json.dumps(arguments, sort_keys=True)}"

    def invalid(self, arguments: dict[str, Any]) -> str | None:
        """Why ``arguments`` cannot be run (a required property missing), or None."""
        missing = [key for key in self.parameters.get("required", []) if key not in arguments]
        return f"missing {', '.join(missing)}" if missing else None

    def not_permitted(self) -> str:
        """The result when the session's owner lacks ``permission``."""
        return (
            f"not permitted: this account may not use the {self.name} tool "
            f"(it needs the {self.permission} permission)"
        )

    async def unavailable(self) -> str | None:
        """Why the tool cannot run on this worker now (the result, no approval asked), or None."""
        return None

    @abstractmethod
    async def run(self, context: ToolContext, arguments: dict[str, Any]) -> str:
        """Run one approved call; returns the result for the model."""

    def schema(self) -> dict[str, Any]:
        """This tool as a chat-completions function tool."""
        function = {"name": self.name, "description": self.description}
        return {"type": "function", "function": {**function, "parameters": self.parameters}}
