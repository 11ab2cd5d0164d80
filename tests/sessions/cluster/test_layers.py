"""The signed Redis channel layer against a real redis-server: a message pushed into Redis
without the key is dropped (warned, counted) and the receive goes on to the next one."""

import logging
import os
import time

import msgpack
import pytest
import redis.asyncio as redis

from gateway_app.sessions.cluster.layers import ResilientRedisChannelLayer
from tests.support.servers import RedisServer


@pytest.fixture(scope="module")
def redis_server():
    with RedisServer() as server:
        yield server


@pytest.fixture
async def layer(redis_server):
    layer = ResilientRedisChannelLayer(hosts=[redis_server.url], expiry=60)
    yield layer
    await layer.flush()
    await layer.close_pools()


async def push_raw(layer, channel, data):
    """Store ``data`` on ``channel`` as channels-redis does, with a plain Redis client."""
    key = layer.prefix + (layer.non_local_name(channel) if "!" in channel else channel)
    client = redis.from_url(layer.hosts[0]["address"])
    try:
        # Scored as sent a second ago: ahead of what the layer sends next, and not expired.
        await client.zadd(key, {data: time.time() - 1})
    finally:
        await client.aclose()


def forged(channel):
    """A message as the plain msgpack serializer writes it, addressed to ``channel``."""
    body = {"type": "host.call", "op": "resume", "__asgi_channel__": channel}
    return os.urandom(12) + msgpack.packb(body)


@pytest.mark.parametrize("specific", [True, False], ids=["process-local", "general"])
async def test_receive_skips_a_forged_message_and_returns_the_next_valid_one(
    layer, specific, caplog
):
    """Tests that a message pushed into Redis without the key is dropped (warned, counted)
    and the same receive returns the next genuine message instead of raising."""
    channel = await layer.new_channel() if specific else "general-channel"
    await push_raw(layer, channel, forged(channel))
    await layer.send(channel, {"type": "genuine"})
    with caplog.at_level(logging.WARNING, logger="gateway_app.sessions.cluster.layers"):
        assert await layer.receive(channel) == {"type": "genuine"}
    assert layer.rejected == 1
    assert "failed verification" in caplog.text


async def test_a_consumer_receive_survives_a_forged_message_ahead_of_its_own(layer):
    """Tests that a forged message for one process-local channel does not break the receive
    of another channel of the same process (they share one queue in Redis)."""
    mine, other = await layer.new_channel(), await layer.new_channel()
    await push_raw(layer, other, forged(other))
    await layer.send(mine, {"type": "mine"})
    assert await layer.receive(mine) == {"type": "mine"}
    await layer.send(other, {"type": "theirs"})
    assert await layer.receive(other) == {"type": "theirs"}
    assert layer.rejected == 1
