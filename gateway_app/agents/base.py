"""
The small interface between a session's turn and an agent backend.

The session host drives a turn by calling ``Agent.run(turn)``; the backend talks back only
through the ``Turn`` it is given (stream text, report tools, ask questions). Cancelling the
task running ``run`` is how an interrupt reaches a backend, so backends must not swallow
``asyncio.CancelledError``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Literal

ApprovalChoice = Literal["once", "session", "deny"]


class AgentError(Exception):
    """A backend failure the client should see as an ``error`` event; the turn then ends."""


class Turn(ABC):
    """What an agent backend may do during one turn."""

    #: The user's prompt for this turn.
    text: str
    #: Earlier messages of the session, oldest first: ``[{"role", "content"}]``.
    history: list[dict[str, Any]]

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
    async def terminal_refusal(self) -> str | None:
        """Why this session may not run terminal commands now (the tool result), or None."""

    @abstractmethod
    async def run_terminal(self, command: str) -> str:
        """Run an approved command in the session's sandbox; returns the tool result."""


class Agent(ABC):
    """An agent backend. One instance serves every session of a worker."""

    name: str = ""

    @abstractmethod
    async def run(self, turn: Turn) -> None:
        """Produce the reply to ``turn.text``; raise ``AgentError`` on backend failure."""

    async def aclose(self) -> None:
        """Release shared resources (HTTP connection pools) at shutdown."""
        return None
