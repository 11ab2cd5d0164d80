"""Extension points: a project's own agent backend (the AGENT setting, by dotted path with
OPTIONS) and its own tools (TOOLS), offered to the openai backend's model and run through
the turn (permission, approval, run)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from gateway_app import agents
from gateway_app.agents import build_agent, close_agent, get_agent
from gateway_app.agents.openai import OpenAIAgent
from gateway_app.sessions.host import get_host, reset_host
from tests.agents.fake_openai import text_reply, tool_reply
from tests.extensions import tools as ext_tools
from tests.extensions.agents import GreetingAgent

GREETING = "tests.extensions.agents.GreetingAgent"
TOOLS = [
    "gateway_app.agents.tools.terminal.TerminalTool",
    "tests.extensions.tools.ShoutTool",
    "tests.extensions.tools.QuietTool",
    "tests.extensions.tools.SecretTool",
]


@pytest.fixture
async def configure(settings) -> AsyncIterator:
    """``configure(**options)`` overlays HERMES_GATEWAY; the worker's agent is closed after."""

    def apply(**options) -> None:
        settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, **options}

    await close_agent()
    yield apply
    await close_agent()


@pytest.fixture
def runs():
    ext_tools.RUNS.clear()
    yield ext_tools.RUNS
    ext_tools.RUNS.clear()


### The AGENT setting ###


@pytest.mark.django_db(transaction=True)
async def test_a_backend_named_by_dotted_path_sees_the_session_and_the_user(
    connect, alice, configure
):
    """Tests that AGENT = {"BACKEND": dotted path, "OPTIONS": ...} runs a turn with that
    backend, built with OPTIONS as keyword arguments, and that its Turn carries the session
    id and the user (id, username)."""
    configure(AGENT={"BACKEND": GREETING, "OPTIONS": {"greeting": "ahoy"}})
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    complete = await rpc.turn(sid, "hi")
    assert complete["text"] == f"ahoy alice #{alice.pk} in {sid}"


def test_a_dotted_path_string_alone_builds_the_backend_without_options(settings):
    """Tests that AGENT may be just a dotted path: the class is built with no arguments."""
    agent = build_agent(GREETING)
    assert isinstance(agent, GreetingAgent) and agent.greeting == "hello"


def test_openai_options_default_to_the_openai_settings(settings):
    """Tests that the openai alias as BACKEND takes OPENAI_BASE_URL, OPENAI_API_KEY, MODEL and
    AGENT_TIMEOUT_S as defaults, and OPTIONS override them."""
    settings.HERMES_GATEWAY = {
        **settings.HERMES_GATEWAY,
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        "OPENAI_API_KEY": "sk-settings",
        "AGENT_TIMEOUT_S": 7,
    }
    agent = build_agent({"BACKEND": "openai", "OPTIONS": {"model": "from-options"}})
    assert isinstance(agent, OpenAIAgent)
    assert (agent.url, agent.api_key, agent.model, agent.timeout) == (
        "http://127.0.0.1:9/v1/chat/completions",
        "sk-settings",
        "from-options",
        7.0,
    )


async def test_changed_options_replace_the_agent_and_close_the_old_one(configure):
    """Tests that changing the OPTIONS (same BACKEND) builds a new agent and closes the old."""
    configure(AGENT={"BACKEND": GREETING, "OPTIONS": {"greeting": "one"}})
    old = get_agent()
    configure(AGENT={"BACKEND": GREETING, "OPTIONS": {"greeting": "two"}})
    new = get_agent()
    await close_agent()
    assert (old.greeting, new.greeting) == ("one", "two")
    assert old.closes == 1 and new.closes == 1


async def test_changed_tools_replace_the_agent(configure):
    """Tests that changing TOOLS builds a new agent, so the model is offered the new tools."""
    configure(AGENT="openai")
    old = get_agent()
    configure(TOOLS=["tests.extensions.tools.ShoutTool"])
    new = get_agent()
    assert new is not old and set(new.tools) == {"shout"}


@pytest.mark.django_db(transaction=True)
async def test_stopping_the_host_closes_a_custom_backend(configure, fresh_host):
    """Tests that the host's stop() closes the worker's agent configured by dotted path."""
    configure(AGENT=GREETING)
    await get_host()
    agent = get_agent()
    await reset_host()
    assert agent.closes == 1 and agents._agent is None


### The TOOLS setting, through the openai backend ###


def call(name: str, arguments: dict) -> object:
    return tool_reply(name, json.dumps(arguments))


@pytest.fixture
def with_tools(openai_gateway, configure, runs):
    configure(TOOLS=TOOLS)
    return openai_gateway


@pytest.mark.django_db(transaction=True)
async def test_configured_tools_are_offered_to_the_model(connect, alice, with_tools):
    """Tests that the request's tools list holds each configured tool's schema as a function
    tool, beside the backend's own clarify."""
    with_tools.script(text_reply("ok"))
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    await rpc.turn(sid, "hi")
    offered = {t["function"]["name"]: t for t in with_tools.requests[0].json["tools"]}
    assert set(offered) == {"terminal", "shout", "quiet", "secret", "clarify"}
    assert offered["shout"] == {
        "type": "function",
        "function": {
            "name": "shout",
            "description": "Upper-case a text.",
            "parameters": ext_tools.ShoutTool.parameters,
        },
    }


@pytest.mark.django_db(transaction=True)
async def test_a_custom_tool_is_approved_then_run_and_its_result_goes_to_the_model(
    connect, alice, with_tools, runs
):
    """Tests that a call of a custom tool asks approval.request (its name, its description of
    the arguments), runs once approved with the session and user in its context, reports
    progress and tool.complete, and sends its result back to the model."""
    with_tools.script(call("shout", {"text": "hey"}), text_reply("done"))
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    turn_id = (await rpc.call("prompt.submit", {"session_id": sid, "text": "go"}))["turn_id"]
    request = (await rpc.event("approval.request"))["payload"]
    assert (request["tool"], request["description"]) == ("shout", "Shout 'hey'")
    assert runs == []
    await rpc.call(
        "approval.respond",
        {"session_id": sid, "request_id": request["request_id"], "choice": "once"},
    )
    progress = (await rpc.event("tool.progress"))["payload"]
    complete = (await rpc.event("tool.complete"))["payload"]
    assert progress["text"] == "shouting" and progress["tool_id"] == complete["tool_id"]
    assert complete["result"] == "HEY"
    assert (await rpc.event("message.complete", turn_id=turn_id))["payload"]["text"] == "done"
    assert runs == [("shout", sid, "alice", {"text": "hey"})]
    tool_messages = [m for m in with_tools.requests[1].json["messages"] if m["role"] == "tool"]
    assert tool_messages == [{"role": "tool", "tool_call_id": "call_1", "content": "HEY"}]


@pytest.mark.django_db(transaction=True)
async def test_a_denied_custom_tool_call_does_not_run(connect, alice, with_tools, runs):
    """Tests that denying a custom tool's approval skips its run and tells the model."""
    with_tools.script(call("shout", {"text": "hey"}), text_reply("ok"))
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    await rpc.call("prompt.submit", {"session_id": sid, "text": "go"})
    request = (await rpc.event("approval.request"))["payload"]
    await rpc.call(
        "approval.respond",
        {"session_id": sid, "request_id": request["request_id"], "choice": "deny"},
    )
    assert (await rpc.event("tool.complete"))["payload"]["result"].startswith("denied")
    assert runs == []


@pytest.mark.django_db(transaction=True)
async def test_a_tool_whose_permission_the_user_lacks_is_refused_without_approval(
    connect, alice, with_tools, runs
):
    """Tests that a tool with a permission the session's owner lacks is not run and no
    approval is asked: the result (to client and model) says it is not permitted."""
    with_tools.script(call("secret", {"text": "hey"}), text_reply("ok"))
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    complete = await rpc.turn(sid, "go")
    result = next(e for e in rpc.events if e["type"] == "tool.complete")["payload"]["result"]
    assert result.startswith("not permitted") and "auth.delete_user" in result
    assert not [e for e in rpc.events if e["type"] == "approval.request"]
    assert complete["text"] == "ok" and runs == []
    tool_messages = [m for m in with_tools.requests[1].json["messages"] if m["role"] == "tool"]
    assert tool_messages[0]["content"] == result


@pytest.fixture
def root(make_user):
    return make_user("root", is_superuser=True)


@pytest.mark.django_db(transaction=True)
async def test_a_tool_with_the_permission_runs_for_a_user_who_holds_it(
    connect, root, with_tools, runs
):
    """Tests that the permission check passes for an owner who holds it (a superuser)."""
    with_tools.script(call("secret", {"text": "x"}), text_reply("ok"))
    rpc = await connect(root)
    sid = (await rpc.call("session.create"))["session_id"]
    await rpc.call("prompt.submit", {"session_id": sid, "text": "go"})
    request = (await rpc.event("approval.request"))["payload"]
    await rpc.call(
        "approval.respond",
        {"session_id": sid, "request_id": request["request_id"], "choice": "once"},
    )
    assert (await rpc.event("tool.complete"))["payload"]["result"] == "X"


@pytest.mark.django_db(transaction=True)
async def test_needs_approval_may_depend_on_the_arguments(connect, alice, with_tools, runs):
    """Tests that a needs_approval method decides per call: a quiet call runs unasked."""
    with_tools.script(call("quiet", {"text": "psst"}), text_reply("ok"))
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    await rpc.turn(sid, "go")
    assert not [e for e in rpc.events if e["type"] == "approval.request"]
    assert runs == [("quiet", sid, "alice", {"text": "psst"})]


@pytest.mark.django_db(transaction=True)
async def test_a_custom_tool_call_missing_a_required_argument_is_not_run(
    connect, alice, with_tools, runs
):
    """Tests that a call lacking a required parameter is reported as invalid, unasked."""
    with_tools.script(call("shout", {}), text_reply("ok"))
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    await rpc.turn(sid, "go")
    result = next(e for e in rpc.events if e["type"] == "tool.complete")["payload"]["result"]
    assert result.startswith("error: invalid arguments for shout") and runs == []
