"""
The built-in offline agent: deterministic, no network, the default and what tests use.

It streams the prompt back word by word. Directives at the start of the prompt:
``!sleep <seconds> <text>`` (a long turn), ``!tool <command>`` (asks approval for the
``terminal`` tool), ``!clarify <question>`` (asks a question, then echoes the answer).
"""

from __future__ import annotations

import asyncio
import math
import re

from .base import Agent, Turn

_WORDS = re.compile(r"\S+\s*")
# A directive is the whole first word: "!sleepy cat" and "!toolbox" are ordinary prompts.
_DIRECTIVE = re.compile(r"!(sleep|tool|clarify)(?=\s|$)")
# Cap on one !sleep so a typo cannot pin a session for hours.
MAX_SLEEP_S = 3600.0


class EchoAgent(Agent):
    name = "echo"

    async def run(self, turn: Turn) -> None:
        text = turn.text.strip()
        match = _DIRECTIVE.match(text)
        directive = match.group(1) if match else None
        rest = text[match.end() :].strip() if match else text
        if directive == "sleep":
            await self._sleep(turn, rest)
        elif directive == "tool":
            await self._tool(turn, rest)
        elif directive == "clarify":
            await self._clarify(turn, rest)
        else:
            await stream_words(turn, text)

    async def _sleep(self, turn: Turn, args: str) -> None:
        parts = args.split(maxsplit=1)
        try:
            seconds = float(parts[0])
            if math.isnan(seconds):  # a NaN deadline would disorder the loop's timer heap
                raise ValueError(parts[0])
            seconds = min(max(seconds, 0.0), MAX_SLEEP_S)
        except (IndexError, ValueError):
            await stream_words(turn, "usage: !sleep <seconds> <text>")
            return
        rest = parts[1] if len(parts) > 1 else ""
        words = _WORDS.findall(rest) or [""]
        # Spread the sleep over the words so an interrupt lands mid-stream.
        pause = seconds / len(words)
        for word in words:
            await asyncio.sleep(pause)
            if word:
                await turn.delta(word)

    async def _tool(self, turn: Turn, command: str) -> None:
        choice = await turn.ask_approval("terminal", f"Run command: {command}")
        tool_id = await turn.tool_start("terminal", {"command": command})
        if choice == "deny":
            result = f"denied: {command}"
        else:
            result = f"ran: {command}"
        await turn.tool_complete(tool_id, result)
        await stream_words(turn, result)

    async def _clarify(self, turn: Turn, question: str) -> None:
        answer = await turn.ask_clarify(question or "?")
        await stream_words(turn, answer)


async def stream_words(turn: Turn, text: str) -> None:
    """Stream ``text`` one word (with its trailing whitespace) per delta."""
    for word in _WORDS.findall(text):
        await turn.delta(word)
        # Yield to the loop between words, as a real token stream would.
        await asyncio.sleep(0)
