"""
The README's extension points from a host project's own app: ``startproject mysite`` set up
by the README's snippets as in ``test_add_to_project_live``, plus a small app ``myext`` of
its own with an agent, a tool, a slash command and a JSON-RPC method, configured by dotted
path in ``HERMES_GATEWAY`` as the README documents, and driven through the real daphne.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.hostproject import HostProject, build_wheel
from tests.support.live import ws_rpc

pytestmark = pytest.mark.live

#: The host's own app, written into the project directory (only there can it be imported).
MYEXT = {
    "__init__.py": "",
    "agents.py": """
from gateway_app.agents import Agent
from gateway_app.agents.tools import load_tools
from gateway_app.conf import setting


class ReportAgent(Agent):
    name = "report"

    def __init__(self, *, greeting="hello"):
        self.greeting = greeting
        self.tools = load_tools(setting("TOOLS"))

    async def run(self, turn):
        await turn.delta(f"{self.greeting} {turn.user.username}: ")
        for tool in self.tools:
            await turn.delta(await turn.call_tool(tool, {"text": turn.text}))
""",
    "tools.py": """
from gateway_app.agents.tools import Tool


class StampTool(Tool):
    name = "stamp"
    description = "Stamp a text."
    parameters = {"type": "object", "properties": {"text": {"type": "string"}}}
    needs_approval = False

    async def run(self, context, arguments):
        return f"[stamped {arguments['text']} for {context.user.username}]"
""",
    "slash.py": """
from gateway_app.slash import command


@command(name="where", description="Say where the command runs.", usage="/where <text>")
def where(ctx, args):
    return f"{args.strip()}: {ctx.user.username} in {ctx.session_id}"
""",
    "rpc.py": """
from gateway_app.rpc.dispatch import method
from gateway_app.rpc.params import get_str
from gateway_app.rpc.schema import obj, string


@method(
    "myext.greet",
    params=obj({"name": string(maxLength=100)}, required=("name",)),
    result=obj({"greeting": string()}, required=("greeting",)),
    summary="Greet a name.",
)
async def greet(ctx, params):
    name = get_str(params, "name", max_length=100)
    return {"greeting": f"hello {name}, from {ctx.caller.username}"}
""",
}
#: Appended to the README's settings: the app installed, the extension points by path.
SETTINGS = """
INSTALLED_APPS += ["myext"]
HERMES_GATEWAY = {
    "AGENT": {"BACKEND": "myext.agents.ReportAgent", "OPTIONS": {"greeting": "hi"}},
    "TOOLS": ["myext.tools.StampTool"],
    "SLASH_COMMANDS": ["myext.slash"],
    "RPC_METHODS": ["myext.rpc"],
}
"""


@pytest.fixture(scope="module")
def host(tmp_path_factory) -> Iterator[HostProject]:
    """The host project with ``myext`` configured, migrated, serving; its token minted."""
    directory = tmp_path_factory.mktemp("host")
    project = HostProject(directory, build_wheel(directory / "dist"))
    (project.root / "myext").mkdir()
    for name, source in MYEXT.items():
        (project.root / "myext" / name).write_text(source.lstrip())
    with open(project.root / "mysite" / "settings.py", "a") as settings:
        settings.write(SETTINGS)
    with project.serving():
        yield project


@pytest.fixture
def url(host) -> str:
    return f"ws://127.0.0.1:{host.port}/api/ws"


def test_the_extended_site_passes_its_system_checks(host):
    """Tests that ``manage.py check`` accepts the app's agent, tool, command and method."""
    output = host.run([host.python, "manage.py", "check", "--fail-level", "WARNING"])
    assert "no issues" in output


async def test_a_prompt_streams_the_custom_agents_reply_with_its_tool(host, url):
    """Tests that the custom agent answers a prompt, naming its user, and runs the custom
    tool through ``turn.call_tool`` (no approval asked): tool.start, tool.complete, and the
    tool's result in the reply."""
    async with ws_rpc(url, host.token) as rpc:
        session_id = (await rpc.call("session.create"))["session_id"]
        complete = await rpc.turn(session_id, "memo")
        start = await rpc.event("tool.start", name="stamp")
        done = await rpc.event("tool.complete", tool_id=start["payload"]["tool_id"])
    marker = "[stamped memo for alice]"
    assert complete["text"] == f"hi alice: {marker}"
    assert start["payload"]["args"] == {"text": "memo"}
    assert done["payload"]["result"] == marker
    assert not [event for event in rpc.events if event["type"] == "approval.request"]


async def test_the_catalog_and_completion_list_the_custom_command(host, url):
    """Tests that commands.catalog and complete.slash offer the app's command."""
    async with ws_rpc(url, host.token) as rpc:
        catalog = (await rpc.call("commands.catalog"))["commands"]
        completions = (await rpc.call("complete.slash", {"text": "/whe"}))["completions"]
    entry = {
        "name": "/where",
        "description": "Say where the command runs.",
        "usage": "/where <text>",
    }
    assert entry in catalog
    assert completions == ["/where"]


async def test_the_custom_command_runs_in_the_slash_worker(host, url):
    """Tests that slash.exec runs the app's command in the session's slash worker (imported
    there from the project directory), with the session id and user it was given."""
    async with ws_rpc(url, host.token) as rpc:
        session_id = (await rpc.call("session.create"))["session_id"]
        result = await rpc.call("slash.exec", {"session_id": session_id, "command": "/where x"})
    assert result == {"output": f"x: alice in {session_id}"}


async def test_the_custom_rpc_method_answers(host, url):
    """Tests that the app's JSON-RPC method answers, with its caller."""
    async with ws_rpc(url, host.token) as rpc:
        result = await rpc.call("myext.greet", {"name": "bob"})
    assert result == {"greeting": "hello bob, from alice"}
