"""The stdio transport's limits: oversized lines get 4013 without being buffered whole, and
the rate limit throttles reading instead of refusing."""

import asyncio
import json
import time

import pytest

from gateway_app.rpc.context import Caller
from gateway_app.transport.stdio import serve

pytestmark = pytest.mark.django_db(transaction=True)


def ping(request_id, pad=""):
    return json.dumps(
        {"jsonrpc": "2.0", "id": request_id, "method": "gateway.ping", "params": {"pad": pad}}
    )


async def run_stdio(user, *chunks: bytes, limit: int = 64 * 1024) -> list[dict]:
    """Feed ``chunks`` (letting the server read between them), then EOF, to a stdio session;
    return every line written after gateway.ready, decoded."""
    reader = asyncio.StreamReader(limit=limit)
    written = []

    async def write_line(text):
        written.append(json.loads(text))

    async def feed():
        for chunk in chunks:
            reader.feed_data(chunk)
            await asyncio.sleep(0.05)
        reader.feed_eof()

    feeder = asyncio.create_task(feed())
    await asyncio.wait_for(serve(Caller(user.pk, user.get_username()), reader, write_line), 20)
    await feeder
    return written[1:]


async def test_stdio_line_over_the_message_limit_gets_4013(fresh_host, alice, limits):
    """Tests that a stdio line over MAX_MESSAGE_BYTES gets 4013 with id null and the next
    line is served."""
    limits(MAX_MESSAGE_BYTES=300)
    data = (ping(1, "x" * 400) + "\n" + ping(2) + "\n").encode()
    first, second = await run_stdio(alice, data)
    assert first["id"] is None and first["error"]["code"] == 4013
    assert second == {"jsonrpc": "2.0", "id": 2, "result": {"pong": True}}


async def test_stdio_line_over_the_reader_buffer_is_discarded_whole(fresh_host, alice):
    """Tests that a line longer than the stream buffer gets one 4013 and its tail is not
    read as a line of its own (a valid request hidden in the tail does not run)."""
    # The line arrives in two pieces; its second piece alone would be a valid request.
    head = b"x" * 100_000
    tail = (ping(9) + "\n" + ping(2) + "\n").encode()
    responses = await run_stdio(alice, head, tail, limit=64 * 1024)
    assert [(r["id"], r.get("error", {}).get("code")) for r in responses] == [
        (None, 4013),
        (2, None),
    ]


async def test_stdio_rate_limit_throttles_instead_of_refusing(fresh_host, alice, limits):
    """Tests that messages over the rate on stdio are delayed, not answered 4029."""
    limits(RATE_LIMIT_PER_S=50, RATE_LIMIT_BURST=1)
    data = "".join(ping(i) + "\n" for i in range(6)).encode()
    started = time.monotonic()
    responses = await run_stdio(alice, data)
    assert time.monotonic() - started >= 0.09
    assert [r["result"] for r in responses] == [{"pong": True}] * 6


async def test_stdio_blank_lines_cost_nothing(fresh_host, alice, limits):
    """Tests that blank lines are skipped without spending rate tokens."""
    limits(RATE_LIMIT_PER_S=0.001, RATE_LIMIT_BURST=2)
    responses = await run_stdio(alice, (ping(1) + "\n\n\n   \n" + ping(2) + "\n").encode())
    assert [r["id"] for r in responses] == [1, 2]
