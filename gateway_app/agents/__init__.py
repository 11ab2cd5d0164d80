"""Agent backends: ``echo`` (offline, default), ``openai`` (OpenAI-compatible streaming), or
any ``Agent`` subclass the ``AGENT`` setting names; one per worker, closed when replaced."""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any

from ..conf import setting
from .base import Agent, AgentError, Turn, TurnUser
from .loading import build_agent

__all__ = ["Agent", "AgentError", "Turn", "TurnUser", "build_agent", "close_agent", "get_agent"]

logger = logging.getLogger(__name__)

_agent: Agent | None = None
#: The AGENT and TOOLS settings ``_agent`` was built from.
_built_from: Any = None
#: Closes of replaced agents still running: held so they finish, awaited by close_agent().
_closing: set[asyncio.Task[None]] = set()


def get_agent() -> Agent:
    """The worker's agent backend, built on first use from the ``AGENT`` setting; when that
    setting (or ``TOOLS``) changed, the agent it replaces is closed."""
    global _agent, _built_from
    wanted = (setting("AGENT"), setting("TOOLS"))
    if _agent is None or _built_from != wanted:
        # A copy: a dict setting changed in place must still count as a change.
        replaced, _agent, _built_from = _agent, build_agent(wanted[0]), copy.deepcopy(wanted)
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
