"""An attacker holding a plain Redis client (no SECRET_KEY) against a real daphne worker:
reading alice's registry entry and pushing host.call messages into her host's channel, as
channels-redis stores them, neither returns her transcript nor answers her questions; a
genuine message pushed again is dropped; and a registry entry rewritten to name another
owner does not let that user in."""

import os
import time
import uuid

import msgpack
import pytest
import redis.asyncio as redis

from gateway_app.sessions.cluster import messages
from gateway_app.sessions.cluster.layers import ResilientRedisChannelLayer
from gateway_app.sessions.cluster.registry import SESSION_KEY, RedisRegistry
from gateway_app.sessions.cluster.router import RemoteError
from gateway_app.sessions.cluster.signing import SignedMessageSerializer
from gateway_app.sessions.host import SessionHost
from tests.sessions.cluster.fakes import connect
from tests.support.live import ws_rpc
from tests.support.poll import eventually
from tests.support.servers import Database, GatewayServer, RedisServer

pytestmark = pytest.mark.live

SECRET_KEY = "live-test-secret-key-" + "s" * 40
PREFIX = "asgi"  # channels-redis' default key prefix
ATTACKER = "specific.attacker!"


@pytest.fixture(scope="module")
def redis_server():
    with RedisServer() as server:
        yield server


@pytest.fixture
def worker(tmp_path, redis_server):
    """One daphne worker on Redis (its host channel is there); yields (server, token)."""
    database = Database(tmp_path)
    token = database.token("alice")
    env = {"REDIS_URL": redis_server.url, "DJANGO_SECRET_KEY": SECRET_KEY}
    with GatewayServer(database, env=env) as server:
        yield server, token


@pytest.fixture
async def attacker(redis_server):
    client = redis.from_url(redis_server.url)
    yield client
    await client.aclose()


async def registry_entry(client, session_id):
    """What any Redis client can read: the session's host channel and owner."""
    entry = await client.hgetall(SESSION_KEY.format(session_id))
    return entry[b"host"].decode(), int(entry[b"user"])


def channel_key(channel):
    """The sorted set channels-redis keeps a process-local channel's messages in."""
    return PREFIX + channel[: channel.index("!") + 1]


async def push(client, channel, data):
    await client.zadd(channel_key(channel), {data: time.time()})


def unsigned(message):
    """A message as the plain channels-redis msgpack serializer stores it."""
    return os.urandom(12) + msgpack.packb(message)


def forged_call(op, session_id, host, user_id, args):
    """A host.call claiming alice (read from the registry), replies to the attacker."""
    return {
        "type": "host.call",
        "call_id": uuid.uuid4().hex,
        "reply_to": ATTACKER + "reply",
        "op": op,
        "session_id": session_id,
        "args": args,
        "conn": {
            "channel": ATTACKER + "events",
            "user_id": user_id,
            "username": "alice",
            "is_staff": False,
            "worker": ATTACKER + "reply",
        },
        "__asgi_channel__": host,
    }


async def logged(server, text, count=1, within=10.0):
    """Wait for ``text`` to appear ``count`` times in the worker's log."""
    await eventually(
        lambda: server.log().count(text) >= count,
        within=within,
        interval=0.05,
        message=lambda: f"{text!r} not logged:\n{server.log()}",
    )


async def handled(server, attacker, within=10.0):
    """Wait until the worker dealt with a forged call: dropped it, or answered the attacker."""

    async def dealt_with():
        return "failed verification" in server.log() or await attacker.zcard(channel_key(ATTACKER))

    await eventually(
        dealt_with,
        within=within,
        interval=0.05,
        message=lambda: f"the forged call was not handled:\n{server.log()}",
    )


async def test_a_forged_resume_returns_nothing_and_is_dropped(worker, attacker):
    """Tests that a host.call resume pushed into Redis naming alice gets no reply and no
    events to the attacker's channel, is logged as dropped, and her session still works."""
    server, token = worker
    async with ws_rpc(server.url, token) as alice:
        sid = (await alice.call("session.create"))["session_id"]
        await alice.turn(sid, "alice's secret plan")
        host, user_id = await registry_entry(attacker, sid)
        message = forged_call("resume", sid, host, user_id, {"last_seq": None})
        await push(attacker, host, unsigned(message))
        await handled(server, attacker)
        assert await attacker.zcard(channel_key(ATTACKER)) == 0, "alice's events leaked"
        await logged(server, "failed verification")
        complete = await alice.turn(sid, "still mine")
        assert complete["text"] == "still mine"


async def test_a_forged_respond_does_not_approve_a_pending_tool_call(worker, attacker):
    """Tests that a host.call respond pushed into Redis does not answer alice's pending
    approval: it stays pending, and her own deny decides."""
    server, token = worker
    async with ws_rpc(server.url, token) as alice:
        sid = (await alice.call("session.create"))["session_id"]
        await alice.call("prompt.submit", {"session_id": sid, "text": "!tool rm -rf /"})
        request = (await alice.event("approval.request"))["payload"]
        host, user_id = await registry_entry(attacker, sid)
        args = {"kind": "approval", "request_id": request["request_id"], "answer": "once"}
        await push(attacker, host, unsigned(forged_call("respond", sid, host, user_id, args)))
        await handled(server, attacker)
        assert await attacker.zcard(channel_key(ATTACKER)) == 0, "the forged respond ran"
        await logged(server, "failed verification")
        await alice.call(
            "approval.respond",
            {"session_id": sid, "request_id": request["request_id"], "choice": "deny"},
        )
        complete = (await alice.event("message.complete"))["payload"]
        assert complete["text"] == "denied: rm -rf /"


async def test_a_genuine_message_pushed_again_is_dropped(worker, attacker):
    """Tests that a validly signed teardown captured and pushed again after alice resumed
    her session (revived under the same id) is dropped instead of closing it again."""
    server, token = worker
    signer = SignedMessageSerializer(random_prefix_length=12, expiry=60, secrets=[SECRET_KEY])
    async with ws_rpc(server.url, token) as alice:
        sid = (await alice.call("session.create"))["session_id"]
        host, _ = await registry_entry(attacker, sid)
        captured = signer.serialize(
            {
                "type": messages.SESSION_TEARDOWN,
                "id": uuid.uuid4().hex,
                "session_id": sid,
                "reason": "closed",
                "__asgi_channel__": host,
            }
        )
        await push(attacker, host, captured)
        await alice.event("session.closed")
        await alice.call("session.resume", {"session_id": sid})
        await push(attacker, host, captured)
        await logged(server, "dropped a repeated")
        complete = await alice.turn(sid, "after the replay")
        assert complete["text"] == "after the replay"
        assert not [e for e in alice.events if e["type"] == "session.closed"]


### A registry entry rewritten (two hosts in this process on the real Redis) ###


@pytest.fixture
async def hosts(redis_server, settings):
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "REAP_GRACE_S": 0}
    client = redis.from_url(redis_server.url)
    await client.flushall()
    await client.aclose()
    started = []
    for name in ("A", "B"):
        layer = ResilientRedisChannelLayer(hosts=[redis_server.url], capacity=5000, expiry=60)
        host = SessionHost(layer, name, RedisRegistry(redis_server.url))
        await host.start()
        started.append(host)
    yield started
    for host in started:
        await host.stop()
        await host.layer.close_pools()


@pytest.mark.django_db(transaction=True)
async def test_a_registry_entry_rewritten_to_another_owner_does_not_let_them_in(
    hosts, attacker, alice, bob
):
    """Tests that when the registry's owner field of alice's session says bob (anybody on
    Redis can write it), bob's resume through B is forwarded to A and refused there (4001):
    the live session's owner decides, not the registry."""
    a, b = hosts
    session = await a.create(await connect(a, alice), "alice's")
    await attacker.hset(SESSION_KEY.format(session.id), "user", bob.pk)
    on_b = await connect(b, bob)
    with pytest.raises(RemoteError) as refused:
        await b.router.call(on_b, "resume", session.id, last_seq=None)
    assert refused.value.code == 4001
    assert on_b.channel_name not in session.attached


@pytest.mark.django_db(transaction=True)
async def test_the_layer_and_the_registry_work_with_a_password_url(alice):
    """Tests that a Redis requiring a password (in REDIS_URL) serves the channel layer and
    the session registry, while a client without it is refused."""
    with RedisServer(password="s3cret-redis-password") as server:
        unauthenticated = redis.Redis(port=server.port)
        try:
            with pytest.raises(redis.AuthenticationError):
                await unauthenticated.ping()
        finally:
            await unauthenticated.aclose()
        layer = ResilientRedisChannelLayer(hosts=[server.url])
        host = SessionHost(layer, "A", RedisRegistry(server.url))
        await host.start()
        try:
            session = await host.create(await connect(host, alice), "behind a password")
            assert (await host.registry.lookup(session.id)).host == host.channel_name
            channel = await layer.new_channel()
            await layer.send(channel, {"type": "ping"})
            assert await layer.receive(channel) == {"type": "ping"}
        finally:
            await host.stop()
            await layer.close_pools()
