"""
The small interface between a session's turn and an agent backend.

The session host drives a turn by calling ``Agent.run(turn)``; the backend talks back only
through the ``Turn`` it is given (stream text, call tools, ask questions). Cancelling the
task running ``run`` is how an interrupt reaches a backend, so backends must not swallow
``asyncio.CancelledError``. A backend is configured by ``HERMES_GATEWAY["AGENT"]``
(``{"BACKEND": "dotted.path.Class", "OPTIONS": {...}}``, see ``agents.loading``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from .tools.base import Tool, ToolContext

ApprovalChoice = Literal["once", "session", "deny"]


class AgentError(Exception):
    """A backend failure the client should see as an ``error`` event; the turn then ends."""


@dataclass(frozen=True, slots=True)
class TurnUser:
    """The session's owner, as a backend sees it (no ORM object: the turn runs async)."""

    id: int
    username: str


class Turn(ABC):
    """What an agent backend may do during one turn."""

    #: The user's prompt for this turn.
    text: str
    #: Earlier messages of the session, oldest first: ``[{"role", "content"}]``.
    history: list[dict[str, Any]]
    #: The session this turn belongs to.
    session_id: str
    #: The session's owner (who submitted the prompt).
    user: TurnUser

    @abstractmethod
    async def delta(self, text: str) -> None:
        """Stream a piece of the assistant's reply."""

    @abstractmethod
    async def tool_start(self, name: str, args: dict[str, Any]) -> str:
        """Announce a tool call; returns its ``tool_id``."""

    @abstractmethod
    async def tool_complete(self, tool_id: str, result: Any) -> None:
        """Report a tool call's result."""

    @abstractmethod
    async def ask_approval(self, tool: str, description: str) -> ApprovalChoice:
        """Ask the user to approve a tool run; waits (across reconnects) for the answer."""

    @abstractmethod
    async def ask_clarify(self, question: str) -> str:
        """Ask the user a question; waits (across reconnects) for the answer."""

    @abstractmethod
    async def tool_refusal(self, tool: Tool) -> str | None:
        """Why the session's owner may not use ``tool`` now (its ``permission``), or None."""

    @abstractmethod
    def tool_context(self, tool_id: str) -> ToolContext:
        """What a running tool call may use: session, user, scratch directory, progress."""

    async def call_tool(self, tool: Tool, arguments: dict[str, Any]) -> str:
        """Run one tool call the way every backend must: refused without asking when not
        permitted or unavailable, else approved by the user when the tool needs it, then run
        (permission asked again: approval takes time). Returns the result for the model."""
        refusal = await self._refusal(tool)
        choice: ApprovalChoice = "once"
        if refusal is None and tool.approval_needed(arguments):
            choice = await self.ask_approval(tool.name, tool.describe(arguments))
        tool_id = await self.tool_start(tool.name, arguments)
        if refusal is None and choice != "deny":
            refusal = await self._refusal(tool)
        if refusal is not None:
            result = refusal
        elif choice == "deny":
            result = tool.denied_result
        else:
            result = await tool.run(self.tool_context(tool_id), arguments)
        await self.tool_complete(tool_id, result)
        return result

    async def _refusal(self, tool: Tool) -> str | None:
        return await self.tool_refusal(tool) or await tool.unavailable()


class Agent(ABC):
    """An agent backend. One instance serves every session of a worker; it is built with
    ``default_options()`` overlaid by the setting's ``OPTIONS`` as keyword arguments."""

    name: str = ""

    @classmethod
    def default_options(cls) -> dict[str, Any]:
        """Constructor arguments taken from gateway settings, under the configured OPTIONS."""
        return {}

    @abstractmethod
    async def run(self, turn: Turn) -> None:
        """Produce the reply to ``turn.text``; raise ``AgentError`` on backend failure."""

    async def aclose(self) -> None:
        """Release shared resources (HTTP connection pools) when replaced or at shutdown."""
        return None
