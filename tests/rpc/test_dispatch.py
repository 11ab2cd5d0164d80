"""The shared dispatch: error rows of PROTOCOL.md, crash containment, notifications."""

import json

import pytest

from gateway_app.rpc import dispatch as dispatch_module
from gateway_app.rpc.dispatch import method

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def crashing_method(limits):
    @method("test.crash")
    async def crash(ctx, params):
        raise RuntimeError("boom")

    limits(RPC_METHODS=[__name__])

    yield
    dispatch_module.forget_module(__name__)


async def test_parse_error_answers_minus_32700_with_null_id(connect, alice):
    """Tests that a non-JSON line gets -32700 with id null."""
    rpc = await connect(alice)
    await rpc.send_text("{this is not json")
    message = await rpc.read_one()
    assert message == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32700, "message": "Parse error: line is not valid JSON"},
    }


async def test_batch_array_is_invalid_request(connect, alice):
    """Tests that a JSON array (batch) gets -32600."""
    rpc = await connect(alice)
    await rpc.send_text('[{"jsonrpc":"2.0","id":1,"method":"gateway.ping"}]')
    message = await rpc.read_one()
    assert message["error"]["code"] == -32600 and message["id"] is None


async def test_wrong_jsonrpc_version_is_invalid_request_with_its_id(connect, alice):
    """Tests that jsonrpc != 2.0 gets -32600 carrying the request id."""
    rpc = await connect(alice)
    await rpc.send_text('{"jsonrpc":"1.0","id":5,"method":"gateway.ping"}')
    message = await rpc.read_one()
    assert message["error"]["code"] == -32600 and message["id"] == 5


async def test_unknown_method_is_method_not_found(connect, alice):
    """Tests that an unknown method gets -32601 with the request id."""
    rpc = await connect(alice)
    response = await rpc.request("no.such.method")
    assert response["error"]["code"] == -32601 and response["id"] is not None


async def test_invalid_params_name_the_field(connect, alice):
    """Tests that -32602 messages name the offending field."""
    rpc = await connect(alice)
    error = await rpc.error("session.resume", {"session_id": 42})
    assert error["code"] == -32602 and "session_id" in error["message"]
    error = await rpc.error("session.resume", {})
    assert error["code"] == -32602 and "session_id" in error["message"]
    error = await rpc.error(
        "approval.respond", {"session_id": "x", "request_id": "y", "choice": "maybe"}
    )
    assert error["code"] == -32602 and "choice" in error["message"]


async def test_handler_crash_answers_internal_error_and_connection_stays_open(
    connect, alice, crashing_method
):
    """Tests that a crashing handler gets -32603 and later requests are still answered."""
    rpc = await connect(alice)
    error = await rpc.error("test.crash")
    assert error["code"] == -32603
    assert await rpc.call("gateway.ping") == {"pong": True}
    assert rpc.connection.communicator.scope["user"] == alice


async def test_notification_gets_no_response(connect, alice):
    """Tests that a request without id is executed but not answered."""
    rpc = await connect(alice)
    await rpc.send_text('{"jsonrpc":"2.0","method":"session.create","params":{"title":"n"}}')
    await rpc.send_text('{"jsonrpc":"2.0","id":"after","method":"session.list"}')
    message = await rpc.read_one()
    assert message["id"] == "after"
    assert [s["title"] for s in message["result"]["sessions"]] == ["n"]


async def test_notification_with_params_of_wrong_type_gets_no_response(connect, alice):
    """Tests that a notification whose params are not an object is dropped unanswered."""
    rpc = await connect(alice)
    await rpc.send_text('{"jsonrpc":"2.0","method":"gateway.ping","params":[1]}')
    await rpc.send_text('{"jsonrpc":"2.0","id":"after","method":"gateway.ping"}')
    assert (await rpc.read_one())["id"] == "after"


async def test_invalid_request_without_id_is_answered_with_null_id(connect, alice):
    """Tests that a message without id and without a valid method still gets -32600 with
    id null (it is no notification: not a request at all)."""
    rpc = await connect(alice)
    await rpc.send_text('{"jsonrpc":"2.0","params":[1]}')
    message = await rpc.read_one()
    assert message["id"] is None and message["error"]["code"] == -32600


async def test_nan_literal_answers_parse_error_with_null_id(connect, alice):
    """Tests that a line using the non-JSON literal NaN gets -32700 with id null."""
    rpc = await connect(alice)
    await rpc.send_text('{"jsonrpc":"2.0","id":1,"method":"gateway.ping","params":{"x":NaN}}')
    message = await rpc.read_one()
    assert message["id"] is None and message["error"]["code"] == -32700


async def test_multi_line_frame_answers_each_line_in_order(connect, alice):
    """Tests that one frame with several lines (and blank lines) answers each request."""
    rpc = await connect(alice)
    lines = [json.dumps({"jsonrpc": "2.0", "id": i, "method": "gateway.ping"}) for i in (1, 2, 3)]
    await rpc.send_text("\n\n".join(lines) + "\n   \n")
    ids = [(await rpc.read_one())["id"] for _ in range(3)]
    assert ids == [1, 2, 3]


async def test_blank_frame_gets_no_answer(connect, alice):
    """Tests that a frame of whitespace only is ignored."""
    rpc = await connect(alice)
    await rpc.send_text("   \n\n")
    assert await rpc.call("gateway.ping") == {"pong": True}
    assert rpc.responses == {}


async def test_binary_frame_is_answered_not_dropped(connect, alice):
    """Tests that a binary frame is decoded as text and answered."""
    rpc = await connect(alice)
    await rpc.connection.communicator.send_to(
        bytes_data=b'{"jsonrpc":"2.0","id":1,"method":"gateway.ping"}'
    )
    assert (await rpc.read_one())["result"] == {"pong": True}


async def test_unknown_session_is_4001(connect, alice):
    """Tests that an unknown session id gets 4001."""
    rpc = await connect(alice)
    for name, params in [
        ("session.resume", {"session_id": "0" * 32}),
        ("session.close", {"session_id": "0" * 32}),
        ("session.interrupt", {"session_id": "nope"}),
        ("prompt.submit", {"session_id": "0" * 32, "text": "hi"}),
        ("slash.exec", {"session_id": "0" * 32, "command": "/help"}),
        ("approval.respond", {"session_id": "x", "request_id": "y", "choice": "once"}),
        ("clarify.respond", {"session_id": "x", "request_id": "y", "answer": "a"}),
    ]:
        error = await rpc.error(name, params)
        assert error["code"] == 4001, name


async def test_prompt_while_turn_running_is_4009(connect, alice):
    """Tests that prompt.submit during a running turn gets 4009."""
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    await rpc.call("prompt.submit", {"session_id": sid, "text": "!sleep 5 slow"})
    error = await rpc.error("prompt.submit", {"session_id": sid, "text": "again"})
    assert error["code"] == 4009
    assert (await rpc.call("session.interrupt", {"session_id": sid}))["interrupted"] is True
