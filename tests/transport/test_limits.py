"""Input limits and per-user quotas through the consumer: frame and message size, lines per
frame, message rate per connection and per user, live sessions (evicting idle detached ones)
and connections per user; every hit is logged."""

import asyncio
import json
import logging

import pytest
from channels.testing import WebsocketCommunicator

from gateway_app.models import GatewaySession
from gateway_app.sessions.host import current_host
from gateway_app.transport.limits import user_buckets, user_connections
from gateway_app.transport.websocket import GatewayConsumer
from tests.support.poll import eventually

pytestmark = pytest.mark.django_db(transaction=True)


def ping(request_id, pad=""):
    return json.dumps(
        {"jsonrpc": "2.0", "id": request_id, "method": "gateway.ping", "params": {"pad": pad}}
    )


async def read(rpc):
    """The next frame (responses here come in order, one frame each)."""
    return await rpc.read_one()


### Frame size ###


async def test_frame_over_the_limit_closes_with_1009(connect, alice, limits, caplog):
    """Tests that a frame over MAX_FRAME_BYTES closes the socket with code 1009, logged with
    the peer and user."""
    limits(MAX_FRAME_BYTES=1000)
    rpc = await connect(alice)
    with caplog.at_level(logging.WARNING, "gateway_app.transport.limits"):
        await rpc.send_text(ping(1, "x" * 1000))
        closed = await rpc.connection.communicator.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": 1009}
    assert "limit frame_bytes hit by user=alice" in caplog.text


def autobahn_close_rules(app):
    """The app behind a server that, like daphne's autobahn, refuses to send close codes
    other than 1000 and 3000-4999 from the application."""

    async def wrapped(scope, receive, send):
        async def strict_send(message):
            code = message.get("code")
            if message["type"] == "websocket.close" and code not in (None, 1000):
                if not 3000 <= code <= 4999:
                    raise Exception(f"invalid close code {code}")
            await send(message)

        await app(scope, receive, strict_send)

    return wrapped


async def test_frame_over_the_limit_closes_with_4013_where_the_server_refuses_1009(
    fresh_host, alice, limits
):
    """Tests that under a server that cannot send 1009 (daphne) the oversized frame still
    closes the socket cleanly, with PROTOCOL.md's 4013."""
    limits(MAX_FRAME_BYTES=1000)
    communicator = WebsocketCommunicator(autobahn_close_rules(GatewayConsumer.as_asgi()), "/api/ws")
    communicator.scope["user"] = alice
    assert (await communicator.connect(timeout=5))[0]
    await communicator.receive_from(timeout=5)  # gateway.ready
    await communicator.send_to(ping(1, "x" * 1000))
    closed = await communicator.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": 4013}
    await communicator.disconnect()


async def test_frame_limit_counts_utf8_bytes_not_characters(connect, alice, limits):
    """Tests that the frame limit is in bytes: 400 three-byte characters exceed 1000."""
    limits(MAX_FRAME_BYTES=1000)
    rpc = await connect(alice)
    await rpc.send_text(ping(1, "€" * 400))
    closed = await rpc.connection.communicator.receive_output(timeout=5)
    assert closed["code"] == 1009


async def test_binary_frame_over_the_limit_closes_with_1009(connect, alice, limits):
    """Tests that binary frames are held to the same frame limit."""
    limits(MAX_FRAME_BYTES=1000)
    rpc = await connect(alice)
    await rpc.connection.communicator.send_to(bytes_data=ping(1, "x" * 1000).encode())
    closed = await rpc.connection.communicator.receive_output(timeout=5)
    assert closed["code"] == 1009


async def test_frame_at_the_limit_is_served(connect, alice, limits):
    """Tests that a frame of exactly MAX_FRAME_BYTES is still served."""
    limits(MAX_FRAME_BYTES=1000, MAX_MESSAGE_BYTES=1000)
    rpc = await connect(alice)
    line = ping(1, "")
    line = ping(1, "x" * (1000 - len(line)))
    assert len(line) == 1000
    await rpc.send_text(line)
    assert (await rpc.response(1))["result"] == {"pong": True}


### Message size ###


async def test_line_over_the_message_limit_gets_4013_with_null_id(connect, alice, limits):
    """Tests that a line over MAX_MESSAGE_BYTES (frame under its limit) gets 4013 with id
    null, and the other lines of the frame and the connection carry on."""
    limits(MAX_MESSAGE_BYTES=500)
    rpc = await connect(alice)
    await rpc.send_text(ping(1) + "\n" + ping(2, "x" * 500) + "\n" + ping(3))
    first, second, third = await read(rpc), await read(rpc), await read(rpc)
    assert first["id"] == 1 and third["id"] == 3
    assert second["id"] is None
    assert second["error"]["code"] == 4013
    assert second["error"]["data"] == {"limit": "message_bytes", "max": 500}
    assert await rpc.call("gateway.ping") == {"pong": True}


async def test_oversized_response_is_replaced_by_4013_with_its_id(connect, alice, limits):
    """Tests that a response larger than a frame may be is answered 4013 with the request
    id instead of being dropped by the server (the client would wait forever)."""
    limits(MAX_FRAME_BYTES=2000)
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    for _ in range(3):
        await rpc.turn(sid, "word " * 100)
    # /history prints the transcript: ~1000 characters a turn, over the 2000-byte frame.
    error = await rpc.error("slash.exec", {"session_id": sid, "command": "/history"})
    assert error["code"] == 4013 and error["data"]["limit"] == "frame_bytes"
    assert await rpc.call("gateway.ping") == {"pong": True}


### Lines per frame ###


async def test_frame_with_too_many_lines_is_refused_whole_with_one_4013(connect, alice, limits):
    """Tests that a frame with more than MAX_LINES_PER_FRAME lines gets one 4013 (id null)
    and none of its lines runs; the connection stays."""
    limits(MAX_LINES_PER_FRAME=3)
    rpc = await connect(alice)
    lines = [json.dumps({"jsonrpc": "2.0", "id": i, "method": "session.create"}) for i in range(4)]
    await rpc.send_text("\n".join(lines))
    refused = await read(rpc)
    assert refused["id"] is None and refused["error"]["code"] == 4013
    assert refused["error"]["data"] == {"limit": "lines_per_frame", "max": 3, "lines": 4}
    assert (await rpc.call("session.list"))["sessions"] == []


async def test_frame_at_the_line_limit_runs_every_line(connect, alice, limits):
    """Tests that exactly MAX_LINES_PER_FRAME lines (blank lines not counted) all run."""
    limits(MAX_LINES_PER_FRAME=3)
    rpc = await connect(alice)
    await rpc.send_text(ping(1) + "\n\n  \n" + ping(2) + "\n" + ping(3) + "\n")
    assert [(await read(rpc))["id"] for _ in range(3)] == [1, 2, 3]


### Rate ###


async def test_messages_over_the_rate_get_4029_with_their_id(connect, alice, limits, caplog):
    """Tests that messages beyond the token bucket's burst get 4029 carrying each request
    id, are not executed, and the connection is kept."""
    limits(RATE_LIMIT_PER_S=0.001, RATE_LIMIT_BURST=5)
    rpc = await connect(alice)
    with caplog.at_level(logging.WARNING, "gateway_app.transport.limits"):
        await rpc.send_text(
            "\n".join(
                json.dumps({"jsonrpc": "2.0", "id": f"r{i}", "method": "session.create"})
                for i in range(8)
            )
        )
        responses = [await read(rpc) for _ in range(8)]
    assert [r["id"] for r in responses] == [f"r{i}" for i in range(8)]
    assert ["result" in r for r in responses] == [True] * 5 + [False] * 3
    for limited in responses[5:]:
        assert limited["error"]["code"] == 4029
        assert limited["error"]["data"]["limit"] == "rate"
        assert limited["error"]["data"]["retry_after_s"] > 0
    assert "limit rate hit by user=alice" in caplog.text
    # Connection kept: the next message is answered too (4029 again: the bucket is empty).
    assert (await rpc.request("gateway.ping"))["error"]["code"] == 4029


async def test_rate_limited_notification_is_dropped_unanswered_but_logged(
    connect, alice, limits, caplog
):
    """Tests that a notification over the rate gets no response (PROTOCOL.md: none for a
    notification) while the hit is still logged with the peer and counted."""
    limits(RATE_LIMIT_PER_S=0.001, RATE_LIMIT_BURST=1)
    rpc = await connect(alice)
    with caplog.at_level(logging.WARNING, "gateway_app.transport.limits"):
        await rpc.send_text(ping(1) + '\n{"jsonrpc":"2.0","method":"gateway.ping"}')
        assert (await read(rpc))["id"] == 1
        # The next answer is the next request's: nothing came for the notification.
        await rpc.send_text(ping(2))
        limited = await read(rpc)
    assert limited["id"] == 2 and limited["error"]["code"] == 4029
    # The notification's hit is the one written (the next within 5 s is only counted).
    (warning,) = [r for r in caplog.records if "limit rate hit" in r.getMessage()]
    assert "by user=alice peer=" in warning.getMessage()
    (ctx,) = current_host().connections.values()
    assert ctx.counters["limit_rate"] == 2


async def test_rate_refills_over_time(connect, alice, limits):
    """Tests that the bucket refills at RATE_LIMIT_PER_S."""
    limits(RATE_LIMIT_PER_S=50, RATE_LIMIT_BURST=1)
    rpc = await connect(alice)
    await rpc.call("gateway.ping")
    await asyncio.sleep(0.05)
    assert await rpc.call("gateway.ping") == {"pong": True}


async def test_each_connection_has_its_own_bucket(connect, alice, limits):
    """Tests that one connection's flood does not limit another connection."""
    limits(RATE_LIMIT_PER_S=0.001, RATE_LIMIT_BURST=2)
    first, second = await connect(alice), await connect(alice)
    for _ in range(2):
        await first.call("gateway.ping")
    assert (await first.request("gateway.ping"))["error"]["code"] == 4029
    assert await second.call("gateway.ping") == {"pong": True}


async def test_connections_of_one_user_share_the_per_user_bucket(connect, alice, bob, limits):
    """Tests that USER_RATE_LIMIT_BURST bounds the sum over a user's connections: the one
    over it gets 4029 with data.limit "rate_per_user" (on either socket), another user is
    unaffected."""
    limits(RATE_LIMIT_PER_S=1000, USER_RATE_LIMIT_PER_S=0.001, USER_RATE_LIMIT_BURST=3)
    first, second = await connect(alice), await connect(alice)
    await first.call("gateway.ping")
    await first.call("gateway.ping")
    await second.call("gateway.ping")
    error = (await second.request("gateway.ping"))["error"]
    assert error["code"] == 4029
    assert error["data"]["limit"] == "rate_per_user"
    assert error["data"]["retry_after_s"] > 0
    assert (await first.request("gateway.ping"))["error"]["data"]["limit"] == "rate_per_user"
    other = await connect(bob)
    assert await other.call("gateway.ping") == {"pong": True}


async def test_a_users_requests_refused_together_get_retry_slots_of_their_own(
    connect, alice, limits
):
    """Tests that 4029s answered to one user's sockets at once name different
    retry_after_s, spaced by the refill time of one request, so clients that follow the
    hint come back one by one instead of refusing each other again."""
    limits(RATE_LIMIT_PER_S=1000, USER_RATE_LIMIT_PER_S=1, USER_RATE_LIMIT_BURST=4)
    sockets = [await connect(alice) for _ in range(4)]
    for _ in range(4):
        await sockets[0].call("gateway.ping")
    retries = [(await rpc.request("gateway.ping"))["error"]["data"] for rpc in sockets]
    assert {data["limit"] for data in retries} == {"rate_per_user"}
    waits = [data["retry_after_s"] for data in retries]
    assert waits == sorted(waits)
    assert [round(b - a) for a, b in zip(waits, waits[1:], strict=False)] == [1, 1, 1]


async def test_a_session_create_spends_more_of_the_users_bucket_than_a_ping(connect, alice, limits):
    """Tests that the methods that start work (here session.create) spend their
    USER_RATE_COSTS from the user's bucket: with a burst of 15, one create and five pings
    fit, the next create does not, and its retry_after_s covers the create's whole cost."""
    limits(RATE_LIMIT_PER_S=1000, USER_RATE_LIMIT_PER_S=1, USER_RATE_LIMIT_BURST=15)
    rpc = await connect(alice)
    await rpc.call("session.create")
    for _ in range(5):
        await rpc.call("gateway.ping")
    error = (await rpc.request("session.create"))["error"]
    assert error["code"] == 4029 and error["data"]["limit"] == "rate_per_user"
    assert error["data"]["retry_after_s"] > 9


async def test_notification_over_the_per_user_rate_is_dropped_but_logged(
    connect, alice, limits, caplog
):
    """Tests that a notification over the per-user rate gets no response, and the hit is
    logged with the user and counted on the connection."""
    limits(USER_RATE_LIMIT_PER_S=0.001, USER_RATE_LIMIT_BURST=1)
    rpc = await connect(alice)
    with caplog.at_level(logging.WARNING, "gateway_app.transport.limits"):
        await rpc.send_text(ping(1) + '\n{"jsonrpc":"2.0","method":"gateway.ping"}')
        assert (await read(rpc))["id"] == 1
        await rpc.send_text(ping(2))
        limited = await read(rpc)
    assert limited["id"] == 2 and limited["error"]["data"]["limit"] == "rate_per_user"
    assert "limit rate_per_user hit by user=alice" in caplog.text
    (ctx,) = current_host().connections.values()
    assert ctx.counters["limit_rate_per_user"] == 2


async def test_user_bucket_is_freed_with_the_users_last_connection(connect, alice, limits):
    """Tests that the per-user bucket lives while any of the user's connections is open and
    is dropped with the last one, so a later connection starts with a full bucket."""
    limits(USER_RATE_LIMIT_PER_S=0.001, USER_RATE_LIMIT_BURST=1)
    first, second = await connect(alice), await connect(alice)
    await first.call("gateway.ping")
    await first.connection.close()
    assert alice.pk in user_buckets
    assert (await second.request("gateway.ping"))["error"]["code"] == 4029
    await second.connection.close()
    assert alice.pk not in user_buckets and len(user_buckets) == 0
    third = await connect(alice)
    assert await third.call("gateway.ping") == {"pong": True}


### Live sessions per user ###


async def test_session_create_beyond_the_per_user_cap_is_refused(
    connect, alice, bob, limits, caplog
):
    """Tests that session.create beyond MAX_SESSIONS_PER_USER answers 4029 with data.limit
    "sessions_per_user", counted per user, and works again once one is closed."""
    limits(MAX_SESSIONS_PER_USER=2)
    a, b = await connect(alice), await connect(bob)
    first = (await a.call("session.create"))["session_id"]
    await a.call("session.create")
    with caplog.at_level(logging.WARNING, "gateway_app.sessions.quota"):
        error = await a.error("session.create")
    assert error["code"] == 4029
    assert error["data"] == {"limit": "sessions_per_user", "max": 2, "live": 2}
    assert "Too many live sessions" in error["message"]
    assert "limit sessions_per_user hit by user=alice" in caplog.text
    assert await b.call("session.create")  # bob has his own quota
    await a.call("session.close", {"session_id": first})
    assert await a.call("session.create")


async def create_detached(connect, user, prompt=None):
    """A session created on a connection that then disconnects (a browser refresh)."""
    rpc = await connect(user)
    sid = (await rpc.call("session.create"))["session_id"]
    if prompt:
        await rpc.call("prompt.submit", {"session_id": sid, "text": prompt})
    await rpc.connection.close()
    return sid


async def close_reason(sid):
    await current_host().store.flush()
    return (await GatewaySession.objects.aget(pk=sid)).close_reason


async def test_create_at_the_quota_evicts_the_least_recently_used_detached_session(
    connect, alice, limits
):
    """Tests that a refresh storm (sessions left detached within the grace) does not lock
    the user out: session.create at MAX_SESSIONS_PER_USER evicts the user's least recently
    used idle detached session, whose row is closed with close_reason "evicted"."""
    limits(MAX_SESSIONS_PER_USER=3, REAP_GRACE_S=30)
    detached = [await create_detached(connect, alice) for _ in range(3)]
    rpc = await connect(alice)
    created = (await rpc.call("session.create"))["session_id"]
    assert set(current_host().sessions) == {*detached[1:], created}
    assert await close_reason(detached[0]) == "evicted"
    assert current_host().counters["quota_evictions"] == 1


async def test_quota_eviction_takes_only_the_callers_sessions(connect, alice, bob, limits):
    """Tests that a user at the quota with only attached sessions gets 4029 even though
    another user has idle detached sessions: those are never evicted for someone else."""
    limits(MAX_SESSIONS_PER_USER=1, REAP_GRACE_S=30)
    bobs = await create_detached(connect, bob)
    rpc = await connect(alice)
    await rpc.call("session.create")
    error = await rpc.error("session.create")
    assert error["data"] == {"limit": "sessions_per_user", "max": 1, "live": 1}
    assert bobs in current_host().sessions


@pytest.mark.parametrize("prompt", ["!sleep 3600 slow", "!tool rm -rf /tmp/x"])
async def test_busy_detached_sessions_are_never_evicted_for_the_quota(
    connect, alice, limits, prompt
):
    """Tests that a detached session running a turn, or waiting on an approval, is not
    evicted: session.create answers 4029 with its data when nothing else is evictable."""
    limits(MAX_SESSIONS_PER_USER=1, REAP_GRACE_S=30, PENDING_QUESTION_TIMEOUT_S=0)
    sid = await create_detached(connect, alice, prompt=prompt)
    host = current_host()
    if prompt.startswith("!tool"):
        await eventually(lambda: host.sessions[sid].pending)
    rpc = await connect(alice)
    error = await rpc.error("session.create")
    assert error["code"] == 4029
    assert error["data"] == {"limit": "sessions_per_user", "max": 1, "live": 1}
    assert host.sessions[sid].busy


async def test_cold_start_at_the_quota_evicts_an_idle_detached_session(connect, alice, limits):
    """Tests that reviving a stored session (slash.exec cold-starts without attaching) at
    the quota evicts the least recently used idle detached session, as session.create."""
    limits(MAX_SESSIONS_PER_USER=2, REAP_GRACE_S=30)
    rpc = await connect(alice)
    stored = await rpc.closed_sessions(3)
    for sid in stored:
        await rpc.call("slash.exec", {"session_id": sid, "command": "/version"})
    assert set(current_host().sessions) == set(stored[1:])
    assert await close_reason(stored[0]) == "evicted"


### Connections per user ###


async def open_raw(user):
    communicator = WebsocketCommunicator(GatewayConsumer.as_asgi(), "/api/ws")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect(timeout=5)
    return communicator, connected


async def test_connections_beyond_the_per_user_cap_are_closed_with_4029(
    connect, alice, bob, limits, caplog
):
    """Tests that a connection beyond MAX_CONNECTIONS_PER_USER is accepted then closed with
    4029 (not 403, which would read as bad credentials); other users are unaffected, and a
    slot frees up when a connection closes."""
    limits(MAX_CONNECTIONS_PER_USER=2)
    first = await connect(alice)
    await connect(alice)
    with caplog.at_level(logging.WARNING, "gateway_app.transport.limits"):
        communicator, connected = await open_raw(alice)
        assert connected
        assert await communicator.receive_output(timeout=5) == {
            "type": "websocket.close",
            "code": 4029,
        }
    assert "limit connections_per_user hit by user=alice" in caplog.text
    await communicator.disconnect()
    assert await connect(bob)
    await first.connection.close()
    assert user_connections.count(alice.pk) == 1
    third = await connect(alice)
    assert await third.call("gateway.ping") == {"pong": True}


async def test_closed_connections_release_their_slot(connect, alice, limits):
    """Tests that the per-user count returns to zero when every connection is closed."""
    limits(MAX_CONNECTIONS_PER_USER=1)
    for _ in range(3):
        rpc = await connect(alice)
        await rpc.connection.close()
    assert user_connections.count(alice.pk) == 0
