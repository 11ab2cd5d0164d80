"""The OpenAI-compatible backend wired into the gateway: a turn through the consumer."""

import pytest

from tests.agents.fake_openai import Reply, text_reply, tool_reply

pytestmark = pytest.mark.django_db(transaction=True)


async def test_openai_turn_streams_through_the_gateway(connect, alice, openai_gateway):
    """Tests that a prompt streams the model's deltas as session events."""
    openai_gateway.script(text_reply("Hel", "lo ", "there"))
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    complete = await rpc.turn(sid, "hi")
    assert complete["text"] == "Hello there"
    assert openai_gateway.requests[0].json["messages"][-1] == {"role": "user", "content": "hi"}


async def test_openai_terminal_tool_asks_approval_through_the_gateway(
    connect, alice, openai_gateway, grant_terminal
):
    """Tests that a model's terminal call becomes approval.request and runs once approved."""
    await grant_terminal(alice)
    openai_gateway.script(
        tool_reply("terminal", '{"command": "echo gateway-ok"}'), text_reply("done")
    )
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    turn_id = (await rpc.call("prompt.submit", {"session_id": sid, "text": "run it"}))["turn_id"]
    request = (await rpc.event("approval.request"))["payload"]
    assert request["tool"] == "terminal"
    await rpc.call(
        "approval.respond",
        {"session_id": sid, "request_id": request["request_id"], "choice": "once"},
    )
    tool = (await rpc.event("tool.complete"))["payload"]
    assert "gateway-ok" in tool["result"]
    complete = (await rpc.event("message.complete", turn_id=turn_id))["payload"]
    assert complete["text"] == "done"


async def test_openai_backend_error_becomes_an_error_event_and_a_finished_turn(
    connect, alice, openai_gateway
):
    """Tests that HTTP 401 from the model gives an error event, then message.complete."""
    openai_gateway.script(Reply(401, body='{"error": {"message": "bad key"}}'))
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    complete = await rpc.turn(sid, "hi")
    error = await rpc.event("error")
    assert "401" in error["payload"]["message"]
    assert complete["interrupted"] is False
    assert await rpc.call("prompt.submit", {"session_id": sid, "text": "again"})
