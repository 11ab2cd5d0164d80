"""The offline echo agent: word-by-word echo and its ``!sleep``/``!tool``/``!clarify``
directives, which are whole words only."""

from __future__ import annotations

from typing import Any

import pytest

from gateway_app.agents.base import ApprovalChoice, Turn
from gateway_app.agents.echo import EchoAgent


class RecordingTurn(Turn):
    """A turn that records what the agent does and answers every question at once."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.history = []
        self.deltas: list[str] = []
        self.approvals: list[tuple[str, str]] = []
        self.questions: list[str] = []
        self.tools: list[tuple[str, dict[str, Any]]] = []

    @property
    def reply(self) -> str:
        return "".join(self.deltas)

    async def delta(self, text: str) -> None:
        self.deltas.append(text)

    async def tool_start(self, name: str, args: dict[str, Any]) -> str:
        self.tools.append((name, args))
        return f"tool-{len(self.tools)}"

    async def tool_complete(self, tool_id: str, result: Any) -> None:
        pass

    async def ask_approval(self, tool: str, description: str) -> ApprovalChoice:
        self.approvals.append((tool, description))
        return "once"

    async def ask_clarify(self, question: str) -> str:
        self.questions.append(question)
        return "the answer"

    async def tool_refusal(self, tool):
        raise AssertionError("the echo agent only simulates the terminal tool")

    def tool_context(self, tool_id):
        raise AssertionError("the echo agent only simulates the terminal tool")


async def run(text: str) -> RecordingTurn:
    turn = RecordingTurn(text)
    await EchoAgent().run(turn)
    return turn


@pytest.mark.parametrize("text", ["!sleepy cat", "!toolbox", "!clarifying remarks", "!tool-x"])
async def test_a_word_that_only_starts_like_a_directive_is_echoed(text):
    """Tests that a first word merely starting with a directive name is an ordinary prompt."""
    turn = await run(text)
    assert turn.reply == text
    assert turn.approvals == [] and turn.questions == [] and turn.tools == []


async def test_tool_directive_asks_approval_for_the_command():
    """Tests that "!tool <command>" asks approval for the terminal tool with that command."""
    turn = await run("!tool ls -la")
    assert turn.approvals == [("terminal", "Run command: ls -la")]
    assert turn.tools == [("terminal", {"command": "ls -la"})]


async def test_directive_followed_by_any_whitespace_is_recognised():
    """Tests that a directive may be followed by a tab or newline, not only a space."""
    turn = await run("!clarify\twhy?")
    assert turn.questions == ["why?"] and turn.reply == "the answer"


async def test_bare_directive_is_recognised():
    """Tests that a directive alone (end of text after the word) still counts."""
    turn = await run("!sleep")
    assert turn.reply == "usage: !sleep <seconds> <text>"


async def test_sleep_directive_streams_the_text_after_the_seconds():
    """Tests that "!sleep <seconds> <text>" streams only the text."""
    turn = await run("!sleep 0 hello  world")
    assert turn.reply == "hello  world"


async def test_sleep_of_nan_seconds_is_a_usage_error():
    """Tests that "!sleep nan" answers the usage line rather than handing the event loop a
    NaN timer deadline."""
    turn = await run("!sleep nan hi")
    assert turn.reply == "usage: !sleep <seconds> <text>"
