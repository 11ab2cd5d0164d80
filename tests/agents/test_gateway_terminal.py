"""
The openai agent's terminal tool through the gateway: the use_terminal permission, checked
by the host at the call, and the sandbox holding against the escapes of issue 15.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import psutil
import pytest
from django.conf import settings

from gateway_app.agents import sandbox
from gateway_app.sessions.host import current_host
from gateway_app.sessions.terminal import NOT_PERMITTED
from tests.agents.fake_openai import text_reply, tool_reply

pytestmark = pytest.mark.django_db(transaction=True)

REPO = Path(settings.BASE_DIR)


def terminal_call(command: str, call_id: str = "call_1"):
    return tool_reply("terminal", json.dumps({"command": command}), call_id=call_id)


async def run_tool(rpc, sid: str, choice: str | None = "once") -> str:
    """Submit a prompt, answer the approval (if ``choice``), return the tool's result."""
    submitted = await rpc.call("prompt.submit", {"session_id": sid, "text": "go"})
    if choice is not None:
        request = (await rpc.event("approval.request"))["payload"]
        await rpc.call(
            "approval.respond",
            {"session_id": sid, "request_id": request["request_id"], "choice": choice},
        )
    result = (await rpc.event("tool.complete"))["payload"]["result"]
    await rpc.event("message.complete", turn_id=submitted["turn_id"])
    return result


def approval_requests(rpc) -> list[dict]:
    return [e for e in rpc.events if e["type"] == "approval.request"]


async def test_user_without_permission_is_not_permitted_and_not_asked(
    connect, alice, openai_gateway
):
    """Tests that a user lacking use_terminal gets "not permitted" and no approval.request."""
    openai_gateway.script(terminal_call("id -u"), text_reply("ok"))
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    assert await run_tool(rpc, sid, choice=None) == NOT_PERMITTED
    assert approval_requests(rpc) == []
    tool_message = openai_gateway.requests[1].json["messages"][-1]
    assert tool_message["content"] == NOT_PERMITTED


async def test_permission_is_read_from_the_database_at_the_call(
    connect, alice, openai_gateway, grant_terminal
):
    """Tests that a permission revoked after the session started refuses the next call."""
    await grant_terminal(alice)
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    await alice.user_permissions.aclear()
    openai_gateway.script(terminal_call("id -u"), text_reply("ok"))
    assert await run_tool(rpc, sid, choice=None) == NOT_PERMITTED
    assert approval_requests(rpc) == []


async def test_user_with_permission_is_asked_then_runs_sandboxed(
    connect, alice, openai_gateway, grant_terminal
):
    """Tests that a permitted user gets approval.request, then the command runs as 65534."""
    await grant_terminal(alice)
    openai_gateway.script(terminal_call("id -u"), text_reply("ok"))
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    assert await run_tool(rpc, sid) == "exit code 0\n65534\n"


@pytest.fixture
def root(make_user):
    return make_user("root", is_superuser=True)


async def test_superuser_is_permitted(connect, root, openai_gateway):
    """Tests that a superuser has use_terminal implicitly."""
    openai_gateway.script(terminal_call("id -u"), text_reply("ok"))
    rpc = await connect(root)
    sid = (await rpc.call("session.create"))["session_id"]
    assert await run_tool(rpc, sid) == "exit code 0\n65534\n"


async def test_missing_sandbox_disables_the_tool_without_asking(
    connect, alice, openai_gateway, grant_terminal, monkeypatch
):
    """Tests that without bubblewrap the tool result is an error and nothing is asked."""
    await grant_terminal(alice)
    monkeypatch.setattr(sandbox, "BWRAP_PATH", "/nonexistent/bwrap")
    openai_gateway.script(terminal_call("id -u"), text_reply("ok"))
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    result = await run_tool(rpc, sid, choice=None)
    assert result.startswith("error: the terminal tool is disabled") and "/nonexistent" in result
    assert approval_requests(rpc) == []


async def test_escapes_from_the_terminal_tool_fail(
    connect, alice, openai_gateway, grant_terminal, monkeypatch
):
    """Tests that the commands of issue 15 read no secret or data, change nothing, kill
    nothing and leave no process behind."""
    monkeypatch.setenv("DJANGO_SECRET_KEY", "django-very-secret")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret")
    await grant_terminal(alice)
    urls = REPO / "hermes_site" / "urls.py"
    urls_before = urls.read_bytes()
    escaped = 700_000 + secrets.randbelow(100_000)
    database = settings.DATABASES["default"]["NAME"]
    commands = [
        "tr '\\0' '\\n' </proc/$PPID/environ; env",
        f"cat {database}; ls {REPO}",
        f"echo 'import os' >> {urls}",
        f"kill -9 $PPID {os.getpid()}; echo rc=$?",
        f"setsid -f sleep {escaped}; echo started",
        "id -u",
    ]
    openai_gateway.script(
        *[terminal_call(c, f"call_{i}") for i, c in enumerate(commands)], text_reply("done")
    )
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    submitted = await rpc.call("prompt.submit", {"session_id": sid, "text": "escape"})
    results = []
    for _ in commands:
        request = (await rpc.event("approval.request"))["payload"]
        await rpc.call(
            "approval.respond",
            {"session_id": sid, "request_id": request["request_id"], "choice": "once"},
        )
        results.append((await rpc.event("tool.complete"))["payload"]["result"])
    await rpc.event("message.complete", turn_id=submitted["turn_id"])

    environ, db, write, kill, setsid, uid = results
    assert "very-secret" not in environ and settings.SECRET_KEY not in environ
    assert not db.startswith("exit code 0") and "manage.py" not in db
    assert not write.startswith("exit code 0") and urls.read_bytes() == urls_before
    assert "rc=0" not in kill and psutil.pid_exists(os.getpid())
    assert setsid == "exit code 0\nstarted\n"
    leftover = [
        p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", str(escaped)]
    ]
    assert leftover == []
    assert uid == "exit code 0\n65534\n"


async def test_scratch_dir_persists_in_the_session_and_goes_with_it(
    connect, alice, openai_gateway, grant_terminal
):
    """Tests that a session's commands share its scratch dir, deleted when it closes."""
    await grant_terminal(alice)
    openai_gateway.script(
        terminal_call("echo kept > note"),
        text_reply("ok"),
        terminal_call("cat note"),
        text_reply("ok"),
    )
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    assert await run_tool(rpc, sid) == "exit code 0\n"
    assert await run_tool(rpc, sid) == "exit code 0\nkept\n"
    scratch = current_host().terminal.scratch.path(sid)
    assert (scratch / "note").exists()
    await rpc.call("session.close", {"session_id": sid})
    assert not scratch.exists()


async def test_session_approval_covers_only_the_approved_command(
    connect, alice, openai_gateway, grant_terminal
):
    """Tests that "session" approval of one command does not let a different one run unasked."""
    await grant_terminal(alice)
    openai_gateway.script(
        terminal_call("echo harmless"),
        text_reply("ok"),
        terminal_call("echo DIFFERENT; id -u"),
        text_reply("ok"),
    )
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    assert await run_tool(rpc, sid, choice="session") == "exit code 0\nharmless\n"
    assert await run_tool(rpc, sid, choice="deny") == "denied: the user did not allow this command"
