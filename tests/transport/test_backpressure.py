"""The bounded outgoing queue: a client that stops reading is closed with 4008 instead of
growing server memory, its sessions are detached (and reapable), and the pieces behind it
(token bucket, outbox) behave; the server buffer probe is tests/adapters/test_daphne.py's."""

import asyncio
import json
import logging

import pytest

from gateway_app.sessions.host import current_host
from gateway_app.transport import websocket
from gateway_app.transport.limits import DIRECT_WRITE_MAX, Outbox, TokenBucket, _in_ms

### Through the consumer ###


@pytest.fixture
def stall(monkeypatch):
    """``stall()`` makes every connection's server buffer report more unsent bytes than the
    high-water mark from then on: what daphne shows for a client that stopped reading."""
    buffered = [0]
    monkeypatch.setattr(websocket, "server_buffer_probe", lambda send: lambda: buffered[0])

    def stall():
        buffered[0] = 10**9

    return stall


@pytest.mark.django_db(transaction=True)
async def test_client_that_stops_reading_is_closed_with_4008(connect, alice, limits, stall, caplog):
    """Tests that once SEND_QUEUE_LIMIT frames wait for a stalled client the connection is
    closed with 4008, logged with user and peer, and its session is detached, not closed."""
    limits(SEND_QUEUE_LIMIT=20)
    rpc = await connect(alice)
    stall()
    communicator = rpc.connection.communicator
    with caplog.at_level(logging.WARNING, "gateway_app.transport.limits"):
        await rpc.send_text(
            '{"jsonrpc":"2.0","id":1,"method":"session.create"}\n'
            '{"jsonrpc":"2.0","id":2,"method":"session.list"}'
        )
        # The responses are queued, not sent; find the session from the host.
        for _ in range(100):
            sessions = list(current_host().sessions.values())
            if sessions:
                break
            await asyncio.sleep(0.01)
        sid = sessions[0].id
        await rpc.send_text(
            '{"jsonrpc":"2.0","id":3,"method":"prompt.submit",'
            f'"params":{{"session_id":"{sid}","text":"{"w " * 200}"}}}}'
        )
        closed = await communicator.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": 4008}
    assert "limit send_queue hit by user=alice" in caplog.text
    await communicator.disconnect()
    session = current_host().sessions[sid]
    assert session.attached == set()
    assert session.status in ("detached", "running")
    assert session.reap_timer is not None or session.turn is not None


@pytest.mark.django_db(transaction=True)
async def test_byte_bound_closes_before_the_frame_count(connect, alice, limits, stall):
    """Tests that SEND_QUEUE_BYTES bounds the queue too: few large frames are enough."""
    limits(SEND_QUEUE_LIMIT=10_000, SEND_QUEUE_BYTES=4000)
    rpc = await connect(alice)
    catalog = len(json.dumps(await rpc.request("commands.catalog")))
    assert catalog > 500
    stall()
    for _ in range(4000 // catalog + 2):
        await rpc.send_text('{"jsonrpc":"2.0","id":1,"method":"commands.catalog"}')
    closed = await rpc.connection.communicator.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": 4008}


@pytest.mark.django_db(transaction=True)
async def test_reading_client_under_load_is_not_closed(connect, alice, limits):
    """Tests that a client which keeps reading gets every frame of a long turn even with a
    small queue (no false 4008)."""
    limits(SEND_QUEUE_LIMIT=5)
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    text = " ".join(f"w{i}" for i in range(300))
    complete = await rpc.turn(sid, text)
    assert "".join(rpc.deltas(complete["turn_id"])) == text


### Outbox ###


async def test_outbox_preserves_order_and_hands_frames_to_the_writer():
    """Tests that frames are written in order when the server keeps up."""
    written = []

    async def write(text):
        written.append(text)

    outbox = Outbox(write, max_frames=10, max_bytes=1000)
    outbox.start()
    for i in range(10):
        assert outbox.put(str(i))
    for _ in range(1000):
        if len(written) == 10:
            break
        await asyncio.sleep(0.001)
    await outbox.stop()
    assert written == [str(i) for i in range(10)]


async def test_outbox_holds_frames_while_the_server_buffer_is_over_high_water():
    """Tests that frames wait while the probe is over high water, refuse beyond the limit,
    and flow again once the server buffer drains."""
    written = []
    buffered = [10_000]

    async def write(text):
        written.append(text)

    outbox = Outbox(
        write, max_frames=3, max_bytes=10**6, probe=lambda: buffered[0], high_water=1000
    )
    outbox.start()
    assert all(outbox.put(f"f{i}") for i in range(3))
    assert not outbox.put("f3")
    await asyncio.sleep(0.02)
    assert written == []
    buffered[0] = 0
    for _ in range(100):
        if len(written) == 3:
            break
        await asyncio.sleep(0.01)
    assert written == ["f0", "f1", "f2"]
    await outbox.stop()


async def test_outbox_bounds_waiting_on_a_blocking_writer():
    """Tests that a writer that blocks (a server whose send awaits the socket) also fills
    the queue instead of growing it."""
    gate = asyncio.Event()

    async def write(text):
        await gate.wait()

    outbox = Outbox(write, max_frames=2, max_bytes=10**6)
    outbox.start()
    outbox.put("a")
    await asyncio.sleep(0.01)  # "a" is in the writer, blocked
    assert outbox.put("b") and outbox.put("c")
    assert not outbox.put("d")
    await outbox.stop()
    assert outbox.frames == 0 and outbox.bytes == 0


async def test_outbox_send_writes_directly_while_the_server_holds_little_unsent():
    """Tests that with nothing queued and at most DIRECT_WRITE_MAX unsent (the frame
    included), send() writes inline (no task switch), and that beyond it the frame queues."""
    written = []
    buffered = [0]

    async def write(text):
        written.append(text)

    outbox = Outbox(write, max_frames=10, max_bytes=10**6, probe=lambda: buffered[0])
    assert await outbox.send("direct")
    buffered[0] = DIRECT_WRITE_MAX - len("also direct")
    assert await outbox.send("also direct")
    assert written == ["direct", "also direct"] and outbox.frames == 0
    buffered[0] = DIRECT_WRITE_MAX - 1
    assert await outbox.send("queued")
    assert written == ["direct", "also direct"] and outbox.frames == 1


async def test_outbox_send_keeps_order_behind_queued_frames():
    """Tests that a frame sent while others wait is queued behind them, even once the
    server has flushed, so frames never overtake each other."""
    written = []
    buffered = [DIRECT_WRITE_MAX]

    async def write(text):
        written.append(text)

    outbox = Outbox(write, max_frames=10, max_bytes=1000, probe=lambda: buffered[0])
    await outbox.send("first")
    buffered[0] = 0
    await outbox.send("second")
    assert written == [] and outbox.frames == 2
    outbox.start()
    for _ in range(100):
        if len(written) == 2:
            break
        await asyncio.sleep(0.005)
    await outbox.stop()
    assert written == ["first", "second"]


def test_outbox_accepts_one_oversized_frame_when_empty():
    """Tests that a single frame larger than the byte bound still fits an empty queue."""
    outbox = Outbox(None, max_frames=5, max_bytes=10)
    assert outbox.put("x" * 100)
    assert not outbox.put("y")


### Token bucket ###


def test_token_bucket_allows_a_burst_then_refuses():
    """Tests that a full bucket allows its burst, then refuses and names the wait."""
    bucket = TokenBucket(rate=10, burst=3, clock=lambda: 0.0)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    assert bucket.delay() == pytest.approx(0.1)


def test_token_bucket_refills_at_the_rate_up_to_the_burst():
    """Tests that an emptied bucket regains one token per 1/rate seconds, never more than
    its burst however long it waited."""
    now = [0.0]
    bucket = TokenBucket(rate=10, burst=3, clock=lambda: now[0])
    assert [bucket.take() for _ in range(3)] == [True, True, True]
    now[0] += 0.1
    assert bucket.take() and not bucket.take()
    now[0] += 100
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]


def test_refused_requests_are_booked_slots_of_their_own():
    """Tests that requests refused by an empty bucket are told to come back one after
    another (each a cost's refill time after the one before), not all at the same moment."""
    bucket = TokenBucket(rate=10, burst=3, clock=lambda: 0.0)
    assert bucket.take(3) and not bucket.take()
    assert [bucket.book() for _ in range(3)] == pytest.approx([0.1, 0.2, 0.3])


def test_each_booked_retry_finds_its_tokens_at_its_slot():
    """Tests that requests which come back when book() told them to are all served: the
    slots never promise the same tokens twice, even with different costs."""
    now = [0.0]
    bucket = TokenBucket(rate=10, burst=6, clock=lambda: now[0])
    assert bucket.take(6)
    slots = sorted((bucket.book(cost), cost) for cost in (3, 1, 2))
    for slot, cost in slots:
        now[0] = slot
        assert bucket.take(cost)


def test_a_retry_at_its_hint_is_served_however_large_the_clock_reading():
    """Tests that a refill computed from two large monotonic readings (a rounding error
    short of a token) still grants a client that waited exactly its millisecond hint."""
    now = [500.0]
    bucket = TokenBucket(rate=200, burst=5, clock=lambda: now[0])
    assert bucket.take(5)
    now[0] += _in_ms(bucket.book())
    assert bucket.take()


def test_a_hint_that_is_a_whole_millisecond_stays_one():
    """Tests that rounding up to the millisecond does not add one to a wait that is already
    whole (0.025 * 1000 is 25.000000000000004 in floating point)."""
    assert _in_ms(0.025) == 0.025 and _in_ms(0.0251) == 0.026


def test_booked_slots_reach_at_most_a_full_refill_ahead():
    """Tests that a client which keeps sending without waiting cannot push its user's
    slots ever further ahead: no slot lies beyond burst / rate."""
    bucket = TokenBucket(rate=10, burst=3, clock=lambda: 0.0)
    assert bucket.take(3)
    assert max(bucket.book() for _ in range(100)) == pytest.approx(0.3)


def test_a_booking_expires_once_its_slot_has_passed():
    """Tests that slots handed out long ago do not delay a request refused later: its wait
    is what the bucket lacks now."""
    now = [0.0]
    bucket = TokenBucket(rate=10, burst=2, clock=lambda: now[0])
    assert bucket.take(2)
    bucket.book()
    now[0] = 10.0
    assert bucket.take(2) and not bucket.take()
    assert bucket.book() == pytest.approx(0.1)


def test_token_bucket_with_zero_rate_never_limits():
    """Tests that RATE_LIMIT_PER_S 0 disables the limit."""
    bucket = TokenBucket(rate=0, burst=1)
    assert all(bucket.take() for _ in range(1000))


async def test_token_bucket_wait_throttles():
    """Tests that wait() sleeps until a token is available instead of refusing."""
    bucket = TokenBucket(rate=100, burst=1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(4):
        await bucket.wait()
    assert loop.time() - started >= 0.025
