"""Tests for the OpenAI-compatible streaming backend, against a loopback fake server."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway_app.agents.base import AgentError, ApprovalChoice, Turn, TurnUser
from gateway_app.agents.openai import OpenAIAgent
from gateway_app.agents.tools import Tool, ToolContext

from .fake_openai import FakeOpenAI, Reply, chunk, text_reply, tool_reply

WAIT_S = 5.0
#: Scratch directories RecordingTurn made, removed after each test.
_scratch_dirs: list[Path] = []


@pytest.fixture(autouse=True)
def _remove_scratch_dirs():
    yield
    while _scratch_dirs:
        shutil.rmtree(_scratch_dirs.pop(), ignore_errors=True)


class RecordingTurn(Turn):
    """Records what the agent streams and answers approvals/questions with preset values."""

    def __init__(
        self,
        text: str,
        history: list[dict[str, Any]] | None = None,
        approval: ApprovalChoice = "once",
        answer: str = "blue",
        refusal: str | None = None,
    ) -> None:
        self.text = text
        self.refusal = refusal
        self.history = history or []
        self.approval = approval
        self.answer = answer
        self.deltas: list[str] = []
        self.events: list[tuple[Any, ...]] = []
        self.first_delta = asyncio.Event()
        self.session_id = "s-test"
        self.user = TurnUser(1, "alice")

    @property
    def reply(self) -> str:
        return "".join(self.deltas)

    async def delta(self, text: str) -> None:
        self.deltas.append(text)
        self.first_delta.set()

    async def tool_start(self, name: str, args: dict[str, Any]) -> str:
        tool_id = f"tool-{len(self.events)}"
        self.events.append(("tool.start", tool_id, name, args))
        return tool_id

    async def tool_complete(self, tool_id: str, result: Any) -> None:
        self.events.append(("tool.complete", tool_id, result))

    async def ask_approval(self, tool: str, description: str) -> ApprovalChoice:
        self.events.append(("approval", tool, description))
        return self.approval

    async def ask_clarify(self, question: str) -> str:
        self.events.append(("clarify", question))
        return self.answer

    async def tool_refusal(self, tool: Tool) -> str | None:
        return self.refusal

    def tool_context(self, tool_id: str) -> ToolContext:
        async def scratch() -> Path:
            path = Path(tempfile.mkdtemp(prefix="hermes-openai-test-"))
            _scratch_dirs.append(path)
            os.chmod(path, 0o777)
            return path

        async def progress(text: str) -> None:
            self.events.append(("progress", tool_id, text))

        return ToolContext(self.session_id, self.user, tool_id, scratch, progress)


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    server = FakeOpenAI()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def agent(fake: FakeOpenAI) -> AsyncIterator[OpenAIAgent]:
    backend = OpenAIAgent(base_url=fake.base_url, api_key="sk-test", model="test-model", timeout=5)
    yield backend
    await backend.aclose()


async def run(agent: OpenAIAgent, turn: RecordingTurn) -> None:
    await asyncio.wait_for(agent.run(turn), WAIT_S)


def tool_messages(fake: FakeOpenAI, request: int = 1) -> list[dict[str, Any]]:
    return [m for m in fake.requests[request].json["messages"] if m["role"] == "tool"]


async def test_streamed_deltas_concatenate_to_the_reply(fake, agent):
    """Tests that content deltas are streamed in order and the request is a proper one."""
    fake.script(text_reply("Hel", "lo ", "world"))
    history = [
        {"role": "user", "content": "earlier"},
        {"role": "assistant", "content": "reply"},
        {"role": "tool", "content": "stray tool output"},
    ]
    turn = RecordingTurn("hi there", history=history)
    await run(agent, turn)

    assert turn.deltas == ["Hel", "lo ", "world"]
    (request,) = fake.requests
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == "Bearer sk-test"
    body = request.json
    assert body["stream"] is True
    assert body["model"] == "test-model"
    assert body["messages"][0]["role"] == "system"
    assert body["messages"][1:] == [
        {"role": "user", "content": "earlier"},
        {"role": "assistant", "content": "reply"},
        {"role": "user", "content": "hi there"},
    ]
    assert {t["function"]["name"] for t in body["tools"]} == {"terminal", "clarify"}


async def test_no_authorization_header_without_api_key(fake):
    """Tests that an empty API key sends no Authorization header."""
    fake.script(text_reply("ok"))
    agent = OpenAIAgent(base_url=fake.base_url, api_key="", model="m", timeout=5)
    try:
        await run(agent, RecordingTurn("hi"))
    finally:
        await agent.aclose()
    assert "authorization" not in fake.requests[0].headers


async def test_approved_terminal_call_runs_the_command(fake, agent):
    """Tests that an approved terminal call runs and its output goes back to the model."""
    fake.script(tool_reply("terminal", json.dumps({"command": "echo hi"})), text_reply("done"))
    turn = RecordingTurn("say hi", approval="once")
    await run(agent, turn)

    assert turn.events[0] == ("approval", "terminal", "Run command: echo hi")
    assert turn.events[1][2:] == ("terminal", {"command": "echo hi"})
    kind, _, result = turn.events[2]
    assert kind == "tool.complete" and result.startswith("exit code 0\n") and "hi" in result
    assert turn.reply == "done"
    assistant = fake.requests[1].json["messages"][-2]
    assert assistant["role"] == "assistant"
    assert assistant["tool_calls"][0]["id"] == "call_1"
    assert assistant["tool_calls"][0]["function"]["arguments"] == '{"command": "echo hi"}'
    assert tool_messages(fake) == [{"role": "tool", "tool_call_id": "call_1", "content": result}]


async def test_refused_terminal_call_asks_nothing_and_reports_the_refusal(fake, agent):
    """Tests that a refused terminal call is not put to the user, and its result says why."""
    fake.script(tool_reply("terminal", json.dumps({"command": "id"})), text_reply("ok"))
    turn = RecordingTurn("who am i", refusal="not permitted: no")
    await run(agent, turn)

    assert not any(e[0] == "approval" for e in turn.events)
    assert turn.events[-1][0] == "tool.complete" and turn.events[-1][2] == "not permitted: no"
    assert tool_messages(fake)[0]["content"] == "not permitted: no"


async def test_denied_terminal_call_does_not_run(fake, agent, tmp_path: Path):
    """Tests that a denied terminal call is not run and the model is told it was denied."""
    marker = tmp_path / "ran"
    fake.script(
        tool_reply("terminal", json.dumps({"command": f"touch {marker}"})), text_reply("ok")
    )
    turn = RecordingTurn("touch it", approval="deny")
    await run(agent, turn)

    assert not marker.exists()
    assert turn.events[-1][0] == "tool.complete" and "denied" in turn.events[-1][2]
    assert "denied" in tool_messages(fake)[0]["content"]


async def test_clarify_call_asks_the_user(fake, agent):
    """Tests that a clarify call asks the question and returns the answer to the model."""
    fake.script(tool_reply("clarify", json.dumps({"question": "Which colour?"})), text_reply("ok"))
    turn = RecordingTurn("paint it", answer="green")
    await run(agent, turn)

    assert [e[0] for e in turn.events] == ["tool.start", "clarify", "tool.complete"]
    assert turn.events[1] == ("clarify", "Which colour?")
    assert turn.events[2][2] == "green"
    assert tool_messages(fake)[0]["content"] == "green"


async def test_invalid_tool_arguments_are_reported_to_the_model(fake, agent):
    """Tests that a call with non-JSON arguments is not run and the error is its result."""
    fake.script(tool_reply("terminal", '{"command": "echo'), text_reply("sorry"))
    turn = RecordingTurn("go")
    await run(agent, turn)

    assert not any(e[0] == "approval" for e in turn.events)
    assert tool_messages(fake)[0]["content"].startswith("error: invalid arguments for terminal")
    assert turn.reply == "sorry"


async def test_text_of_successive_rounds_is_separated(fake, agent):
    """Tests that text before and after a tool round does not run together."""
    before = tool_reply("clarify", json.dumps({"question": "?"}))
    before.events.insert(0, chunk(content="Let me ask."))
    fake.script(before, text_reply("Thanks."))
    turn = RecordingTurn("go")
    await run(agent, turn)

    assert turn.reply == "Let me ask.\n\nThanks."
    assert fake.requests[1].json["messages"][-2]["content"] == "Let me ask."


async def test_tool_rounds_are_capped(fake):
    """Tests that a model calling tools forever ends the turn with an AgentError."""
    agent = OpenAIAgent(base_url=fake.base_url, api_key="", model="m", timeout=5, max_tool_rounds=1)
    call = json.dumps({"question": "again?"})
    fake.script(tool_reply("clarify", call), tool_reply("clarify", call))
    try:
        with pytest.raises(AgentError, match="still calling tools"):
            await run(agent, RecordingTurn("loop"))
    finally:
        await agent.aclose()
    assert len(fake.requests) == 2


async def test_connection_refused_raises_agent_error():
    """Tests that an unreachable server is an AgentError naming the URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    agent = OpenAIAgent(base_url=f"http://127.0.0.1:{port}/v1", api_key="", model="m", timeout=5)
    try:
        with pytest.raises(AgentError, match="Cannot reach the model server"):
            await run(agent, RecordingTurn("hi"))
    finally:
        await agent.aclose()


async def test_http_401_mentions_the_api_key(fake, agent):
    """Tests that a 401 answer is an AgentError about the API key."""
    body = json.dumps({"error": {"message": "Incorrect API key provided"}})
    fake.script(Reply(401, body=body))
    with pytest.raises(AgentError, match="API key.*Incorrect API key provided"):
        await run(agent, RecordingTurn("hi"))


async def test_http_429_reports_retry_after(fake, agent):
    """Tests that a 429 answer is a rate-limit AgentError including Retry-After."""
    fake.script(Reply(429, body="slow down", headers={"Retry-After": "7"}))
    with pytest.raises(AgentError, match=r"Rate limited.*Retry-After: 7.*slow down"):
        await run(agent, RecordingTurn("hi"))


async def test_http_500_reports_status_and_body_excerpt(fake, agent):
    """Tests that a 5xx answer is an AgentError with the status and a short body excerpt."""
    fake.script(Reply(500, body="internal failure " + "x" * 5000))
    with pytest.raises(AgentError, match="HTTP 500: internal failure") as info:
        await run(agent, RecordingTurn("hi"))
    assert len(str(info.value)) < 300


async def test_invalid_json_in_stream_raises_agent_error(fake, agent):
    """Tests that a data line that is not JSON is a malformed-stream AgentError."""
    fake.script(Reply(events=[chunk(content="ok"), "data: {not json"]))
    with pytest.raises(AgentError, match="Malformed stream"):
        await run(agent, RecordingTurn("hi"))


async def test_chunk_without_choices_raises_agent_error(fake, agent):
    """Tests that a chunk without a choices list is a malformed-stream AgentError."""
    fake.script(Reply(events=[{"id": "x", "object": "chat.completion.chunk"}]))
    with pytest.raises(AgentError, match="no choices"):
        await run(agent, RecordingTurn("hi"))


async def test_in_band_error_raises_agent_error(fake, agent):
    """Tests that an error object sent inside the stream becomes an AgentError."""
    fake.script(Reply(events=[{"error": {"message": "model overloaded"}}]))
    with pytest.raises(AgentError, match="model overloaded"):
        await run(agent, RecordingTurn("hi"))


async def test_stream_cut_short_raises_agent_error(fake, agent):
    """Tests that a stream ending without [DONE] or a finish reason is an AgentError."""
    fake.script(Reply(events=[chunk(content="partial")], done=False))
    with pytest.raises(AgentError, match="ended before"):
        await run(agent, RecordingTurn("hi"))


async def test_stalled_stream_raises_read_timeout_error(fake):
    """Tests that a server going silent mid-stream fails after the read timeout."""
    fake.script(Reply(events=[chunk(content="start")], stall=True))
    agent = OpenAIAgent(base_url=fake.base_url, api_key="", model="m", timeout=0.3)
    try:
        with pytest.raises(AgentError, match=r"sent nothing for 0.3s"):
            await run(agent, RecordingTurn("hi"))
    finally:
        await agent.aclose()
    await asyncio.wait_for(fake.disconnected.wait(), WAIT_S)


async def test_cancellation_mid_stream_propagates_and_closes_the_response(fake, agent):
    """Tests that cancelling a turn mid-stream raises CancelledError and drops the connection."""
    fake.script(Reply(events=[chunk(content="first")], stall=True))
    turn = RecordingTurn("hi")
    task = asyncio.create_task(agent.run(turn))
    await asyncio.wait_for(turn.first_delta.wait(), WAIT_S)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(fake.disconnected.wait(), WAIT_S)
    assert turn.deltas == ["first"]
