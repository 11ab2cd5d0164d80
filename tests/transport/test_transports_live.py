"""One script over stdio and over WebSocket (real daphne) gets identical responses."""

import json
import re

import pytest

from tests.support.live import stdio_rpc, ws_rpc
from tests.support.servers import Database, GatewayServer

pytestmark = pytest.mark.live

SCRIPT = [
    '{"jsonrpc":"2.0","id":1,"method":"gateway.ping"}',
    "this is not json",
    '[{"jsonrpc":"2.0","id":2,"method":"gateway.ping"}]',
    '{"jsonrpc":"1.0","id":3,"method":"gateway.ping"}',
    '{"jsonrpc":"2.0","id":4,"method":"nope"}',
    '{"jsonrpc":"2.0","id":5,"method":"session.resume","params":{"session_id":7}}',
    '{"jsonrpc":"2.0","id":6,"method":"session.resume","params":{"session_id":"' + "0" * 32 + '"}}',
    '{"jsonrpc":"2.0","id":7,"method":"commands.catalog"}',
    '{"jsonrpc":"2.0","id":8,"method":"complete.slash","params":{"text":"/h"}}',
    '{"jsonrpc":"2.0","id":9,"method":"session.create","params":{"title":"script"}}',
    '{"jsonrpc":"2.0","method":"gateway.ping"}',
    '{"jsonrpc":"2.0","id":10,"method":"session.list"}',
    '{"jsonrpc":"2.0","id":11,"method":"prompt.submit",'
    '"params":{"session_id":"$SID","text":"a b c"}}',
    '{"jsonrpc":"2.0","id":12,"method":"slash.exec",'
    '"params":{"session_id":"$SID","command":"/title renamed"}}',
    '{"jsonrpc":"2.0","id":13,"method":"session.close","params":{"session_id":"$SID"}}',
]

_VOLATILE = re.compile(r'"(session_id|created_at|last_activity|turn_id)": "[^"]*"')


async def run_script(rpc):
    """Send the script line by line; returns normalized responses and event types."""
    responses = []
    sid = None
    for line in SCRIPT:
        if sid:
            line = line.replace("$SID", sid)
        await rpc.send_text(line)
        if line.startswith("{") and '"id"' not in line:
            continue  # a notification: nothing comes back
        message = await rpc.read_one()
        while "id" not in message:
            message = await rpc.read_one()
        if message.get("result", {}).get("session_id"):
            sid = message["result"]["session_id"]
        if message.get("id") == 11:
            await rpc.event("message.complete")
        responses.append(_VOLATILE.sub(r'"\1": "*"', json.dumps(message, sort_keys=True)))
    await rpc.event("session.closed")
    # Deltas may be coalesced differently by timing; their text may not.
    text = "".join(e["payload"]["text"] for e in rpc.events if e["type"] == "message.delta")
    event_types = [e["type"] for e in rpc.events if e["type"] != "message.delta"]
    return responses, (event_types, text)


async def test_stdio_and_websocket_answer_the_same_script_identically(tmp_path):
    """Tests that both transports share one dispatch: same script, same responses."""
    database = Database(tmp_path)
    token = database.token("alice")
    with GatewayServer(database) as server:
        async with ws_rpc(server.url, token) as rpc:
            ws_responses, ws_events = await run_script(rpc)
    database.token("bob")  # a second user with no sessions, so session.list matches
    async with stdio_rpc(database.env, "bob") as rpc:
        stdio_responses, stdio_events = await run_script(rpc)
    assert len(ws_responses) == len(SCRIPT) - 1
    assert stdio_responses == ws_responses
    assert stdio_events == ws_events == (["message.user", "message.start"], "a b c")
