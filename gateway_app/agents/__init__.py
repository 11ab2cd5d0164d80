"""Agent backends: ``echo`` (offline, default) and ``openai`` (OpenAI-compatible streaming)."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from ..conf import setting
from .base import Agent, AgentError, Turn

__all__ = ["Agent", "AgentError", "Turn", "get_agent", "reset_agent"]

_agent: Agent | None = None


def build_agent(name: str) -> Agent:
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
    """The worker's agent backend, built on first use from the ``AGENT`` setting."""
    global _agent
    if _agent is None or _agent.name != setting("AGENT"):
        _agent = build_agent(setting("AGENT"))
    return _agent


def reset_agent() -> None:
    global _agent
    _agent = None
