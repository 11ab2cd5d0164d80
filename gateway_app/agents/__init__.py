"""Agent backends: ``echo`` (offline, default) and ``openai`` (OpenAI-compatible streaming)."""

from __future__ import annotations

import asyncio
import logging

from django.core.exceptions import ImproperlyConfigured

from ..conf import setting
from .base import Agent, AgentError, Turn

__all__ = ["Agent", "AgentError", "Turn", "close_agent", "get_agent"]

logger = logging.getLogger(__name__)

_agent: Agent | None = None
#: Closes of replaced agents still running: held so they finish, awaited by close_agent().
_closing: set[asyncio.Task[None]] = set()


def build_agent(name: str) -> Agent:
    """A new backend named ``name`` (the ``AGENT`` setting), configured from settings."""
    if name == "echo":
        from .echo import EchoAgent

        return EchoAgent()
    if name == "openai":
        from .openai import OpenAIAgent

        return OpenAIAgent(
            base_url=setting("OPENAI_BASE_URL"),
            api_key=setting("OPENAI_API_KEY"),
            model=setting("MODEL"),
            timeout=setting("AGENT_TIMEOUT_S"),
        )
    raise ImproperlyConfigured(f"Unknown HERMES_AGENT {name!r}: expected 'echo' or 'openai'")


def get_agent() -> Agent:
    """The worker's agent backend, built on first use from the ``AGENT`` setting; when that
    setting changed, the agent it replaces is closed."""
    global _agent
    if _agent is None or _agent.name != setting("AGENT"):
        replaced, _agent = _agent, build_agent(setting("AGENT"))
        if replaced is not None:
            _close_later(replaced)
    return _agent


async def close_agent() -> None:
    """Close the worker's agent and every replaced one still closing (the host's shutdown)."""
    global _agent
    current, _agent = _agent, None
    if current is not None:
        await _aclose(current)
    # Only this loop's: a task left by a loop that has ended can never run, so it is dropped.
    loop = asyncio.get_running_loop()
    _closing.difference_update([task for task in _closing if task.get_loop().is_closed()])
    await asyncio.gather(*(task for task in list(_closing) if task.get_loop() is loop))


def _close_later(agent: Agent) -> None:
    # get_agent is sync: the close runs as a task of the running loop, or at once when there
    # is none (no loop: nothing of the agent's can be in use on one).
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(_aclose(agent))
        return
    task = loop.create_task(_aclose(agent))
    _closing.add(task)
    task.add_done_callback(_closing.discard)


async def _aclose(agent: Agent) -> None:
    try:
        await agent.aclose()
    except Exception:
        # Closing releases pools only; a failure there must not fail a turn or a shutdown.
        logger.warning("closing agent %s failed", agent.name, exc_info=True)
