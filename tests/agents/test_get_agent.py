"""The worker's agent (``gateway_app.agents.get_agent``): built from the AGENT setting, and
closed when it is replaced or when the host stops."""

import asyncio

import pytest

from gateway_app import agents
from gateway_app.agents.base import Agent
from gateway_app.sessions.host import get_host, reset_host


class RecordingAgent(Agent):
    """An agent that records its close."""

    def __init__(self, name: str):
        self.name = name
        self.closed = asyncio.Event()
        self.closes = 0

    async def run(self, turn):
        pass

    async def aclose(self) -> None:
        self.closes += 1
        self.closed.set()


@pytest.fixture
def recording(monkeypatch, settings):
    """Agents are RecordingAgents; ``use(name)`` sets the AGENT setting."""
    monkeypatch.setattr(agents, "build_agent", RecordingAgent)
    monkeypatch.setattr(agents, "_agent", None)

    def use(name: str) -> None:
        settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "AGENT": name}

    return use


async def test_the_agent_is_built_once_per_setting(recording):
    """Tests that get_agent returns the same agent while AGENT does not change."""
    recording("echo")
    assert agents.get_agent() is agents.get_agent()


async def test_an_agent_replaced_after_the_setting_changed_is_closed(recording):
    """Tests that when AGENT changes, get_agent builds the new agent and closes the old one
    (in the background: get_agent is sync)."""
    recording("echo")
    old = agents.get_agent()
    recording("openai")
    new = agents.get_agent()
    assert new.name == "openai" and new is not old
    await old.closed.wait()
    assert old.closes == 1 and new.closes == 0


def test_an_agent_replaced_outside_an_event_loop_is_closed_at_once(recording):
    """Tests that get_agent called with no running loop closes the replaced agent before it
    returns."""
    recording("echo")
    old = agents.get_agent()
    recording("openai")
    agents.get_agent()
    assert old.closes == 1


async def test_close_agent_closes_the_agent_and_waits_for_replaced_ones(recording):
    """Tests that close_agent closes the current agent, waits for the close of a replaced
    one, and leaves the next get_agent to build a fresh agent."""
    recording("echo")
    old = agents.get_agent()
    recording("openai")
    current = agents.get_agent()
    await agents.close_agent()
    assert old.closes == 1 and current.closes == 1
    assert agents.get_agent() is not current


async def test_a_failing_close_is_logged_and_does_not_propagate(recording, caplog):
    """Tests that an agent whose aclose raises is logged, and close_agent still returns."""
    recording("echo")
    agent = agents.get_agent()

    async def broken() -> None:
        raise OSError("pool already gone")

    agent.aclose = broken
    await agents.close_agent()
    assert "closing agent echo failed" in caplog.text


@pytest.mark.django_db(transaction=True)
async def test_stopping_the_host_closes_the_workers_agent(recording, fresh_host):
    """Tests that the session host's stop() closes the worker's agent."""
    recording("echo")
    await get_host()
    agent = agents.get_agent()
    await reset_host()
    assert agent.closes == 1
