"""Agent backends a project might write, for the AGENT setting's tests."""

from __future__ import annotations

from gateway_app.agents import Agent, Turn


class GreetingAgent(Agent):
    """Greets the turn's user by name in its session; ``greeting`` comes from OPTIONS."""

    name = "greeting"

    def __init__(self, *, greeting: str = "hello") -> None:
        self.greeting = greeting
        self.closes = 0

    async def run(self, turn: Turn) -> None:
        user = turn.user
        await turn.delta(f"{self.greeting} {user.username} #{user.id} in {turn.session_id}")

    async def aclose(self) -> None:
        self.closes += 1


class NotAnAgent:
    """Importable, but not an Agent subclass."""
