"""The client library against real daphne: turns that survive a dropped socket, error codes."""

from __future__ import annotations

import asyncio

import pytest

from gateway_app.client import (
    AuthenticationFailed,
    Backoff,
    ClientConnectionError,
    ConnectFailed,
    Gateway,
    MessageComplete,
    MessageDelta,
    MessageStart,
    Reconnected,
    ResumeGap,
    RetryScheduled,
    SessionNotFound,
    WebSocketDialer,
    connect,
)
from tests.support.servers import Database, GatewayServer, free_port

pytestmark = pytest.mark.live

WORDS = " ".join(
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty".split()
)
FAST = Backoff(initial=0.05, maximum=0.4, max_attempts=40)


async def test_a_turn_streams_every_word_once_across_a_dropped_socket(server, token):
    """Tests that a turn iterated across an aborted TCP socket yields each word once, in order."""
    async with connect(server.url, token, backoff=FAST) as gw:
        session = await gw.create_session("drop")
        turn = gw.prompt(session.session_id, f"!sleep 3 {WORDS}")
        deltas: list[str] = []
        seqs: list[int] = []
        async for event in turn:
            if isinstance(event, MessageDelta):
                deltas.append(event.text)
                seqs.append(event.seq)
                if len(deltas) == 6:
                    gw.link.transport.abort()
            if isinstance(event, MessageComplete):
                complete = event
        events = []
        async for event in gw.events():
            events.append(event)
            if isinstance(event, Reconnected):
                break
        assert "".join(deltas) == WORDS
        assert seqs == sorted(set(seqs))
        assert complete.text == WORDS and not complete.interrupted
        assert await turn == WORDS
        assert events[-1].sessions == (session.session_id,)


async def test_a_turn_awaited_across_two_drops_returns_the_whole_text(server, token):
    """Tests that awaiting a turn whose socket drops twice still gives its full final text."""
    async with connect(server.url, token, backoff=FAST) as gw:
        session = await gw.create_session("drops")
        turn = gw.prompt(session.session_id, f"!sleep 2 {WORDS}")
        await turn.accepted()
        for _ in range(2):
            gw.link.transport.abort()
            async for event in gw.events():
                if isinstance(event, Reconnected):
                    break
        assert await turn == WORDS


async def test_the_first_events_of_a_turn_reach_its_iterator(server, token):
    """Tests that a turn's iterator sees message.start before any delta (nothing is lost early)."""
    async with connect(server.url, token) as gw:
        session = await gw.create_session()
        events = [event async for event in gw.prompt(session.session_id, "a b c")]
        assert isinstance(events[0], MessageStart)
        assert isinstance(events[-1], MessageComplete)
        assert "".join(e.text for e in events if isinstance(e, MessageDelta)) == "a b c"


async def test_an_unknown_session_raises_session_not_found_with_code_4001(server, token):
    """Tests that a 4001 error response is raised as SessionNotFound carrying its code."""
    async with connect(server.url, token) as gw:
        with pytest.raises(SessionNotFound) as caught:
            await gw.resume("0" * 32)
        assert caught.value.code == 4001
        assert "0" * 32 not in gw.sessions


async def retries_until_failure(gw: Gateway) -> tuple[list[RetryScheduled], BaseException]:
    """The RetryScheduled events of a gateway whose open() fails, and the error it ended with."""
    retries = []
    try:
        async for event in gw.events():
            retries.append(event)
    except ClientConnectionError as exc:
        return retries, exc
    raise AssertionError("events() ended without the failure")


async def test_a_refused_connect_is_retried_with_growing_delays_then_given_up(token):
    """Tests that connecting to a closed port backs off exponentially, capped, then fails."""
    backoff = Backoff(initial=0.01, maximum=0.04, factor=2.0, max_attempts=5)
    gw = Gateway(WebSocketDialer(f"ws://127.0.0.1:{free_port()}/api/ws", token), backoff=backoff)
    with pytest.raises(ConnectFailed) as caught:
        await gw.open()
    retries, error = await retries_until_failure(gw)
    assert caught.value.attempts == 5 and error is caught.value
    assert [retry.delay for retry in retries] == [0.01, 0.02, 0.04, 0.04]
    assert [retry.attempt for retry in retries] == [1, 2, 3, 4]


async def test_a_gateway_that_comes_up_late_is_reached_by_the_retries(database, token):
    """Tests that connect() keeps retrying a refused port until a server listens there."""
    late = GatewayServer(database)
    backoff = Backoff(initial=0.1, maximum=0.5, max_attempts=None)
    gw = Gateway(WebSocketDialer(late.url, token), backoff=backoff)
    opening = asyncio.ensure_future(gw.open())
    first = await anext(gw.events())
    assert isinstance(first, RetryScheduled) and not opening.done()
    await asyncio.to_thread(late.start)
    try:
        await opening
        assert await gw.ping()
        await gw.close()
    finally:
        await asyncio.to_thread(late.stop)


async def test_a_bad_token_raises_authentication_failed_without_retrying(server):
    """Tests that a refused token (HTTP 403 before accept) is raised after a single attempt."""
    gw = Gateway(WebSocketDialer(server.url, "not-a-token"), backoff=FAST)
    with pytest.raises(AuthenticationFailed):
        await gw.open()
    retries, error = await retries_until_failure(gw)
    assert retries == [] and isinstance(error, AuthenticationFailed)


async def test_a_socket_closed_4003_is_not_reconnected(tmp_path):
    """Tests that a revoked token's close (4003) fails the client instead of redialing."""
    database = Database(tmp_path)
    token = database.token("carol")
    options = '{"TOKEN_RECHECK_S": 0.2}'
    with GatewayServer(database, env={"HERMES_GATEWAY_OPTIONS": options}) as server:
        gw = await connect(server.url, token, backoff=FAST)
        await asyncio.to_thread(database._manage, "gateway_token", "carol", "--revoke", token)
        events = []
        with pytest.raises(AuthenticationFailed):
            async for event in gw.events():
                events.append(event)
        with pytest.raises(AuthenticationFailed):
            await gw.ping()
        assert events == []
        await gw.close()


async def test_a_connect_closed_4029_is_retried_until_a_slot_frees(tmp_path):
    """Tests that a connect refused with 4029 (too many sockets) backs off and gets in later."""
    database = Database(tmp_path)
    token = database.token("dave")
    options = '{"MAX_CONNECTIONS_PER_USER": 1}'
    with GatewayServer(database, env={"HERMES_GATEWAY_OPTIONS": options}) as server:
        first = await connect(server.url, token)
        second = Gateway(WebSocketDialer(server.url, token), backoff=FAST)
        opening = asyncio.ensure_future(second.open())
        retry = await anext(second.events())
        assert isinstance(retry, RetryScheduled) and "4029" in retry.reason
        await first.close()
        await opening
        assert await second.ping()
        await second.close()


class GatedDialer(WebSocketDialer):
    """A dialer that holds every attempt until ``gate`` is set: the client stays away."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self):
        await self.gate.wait()
        return await super().__call__()


async def test_a_turn_that_ended_beyond_the_replay_buffer_is_reconciled(tmp_path):
    """Tests that a resume reporting a gap ends the turn from the transcript and says so."""
    database = Database(tmp_path)
    token = database.token("erin")
    options = '{"REPLAY_BUFFER_EVENTS": 3}'
    with GatewayServer(database, env={"HERMES_GATEWAY_OPTIONS": options}) as server:
        dialer = GatedDialer(server.url, token)
        async with Gateway(dialer, backoff=FAST) as gw, connect(server.url, token) as other:
            session = await gw.create_session("gap")
            sid = session.session_id
            turn = gw.prompt(sid, f"!sleep 1 {WORDS}")
            seen = []
            async for event in turn:
                seen.append(event)
                if len(seen) == 4:  # message.start and three words
                    dialer.gate.clear()
                    gw.link.transport.abort()
                    # While the client is away the turn ends and a second turn pushes it out
                    # of the three-event replay buffer.
                    await other.resume(sid)
                    async for late in other.events():
                        if isinstance(late, MessageComplete):
                            break
                    assert await other.prompt(sid, "x y z") == "x y z"
                    dialer.gate.set()
        gaps = [e for e in seen if isinstance(e, ResumeGap)]
        assert len(gaps) == 1 and gaps[0].status == "live"
        assert isinstance(seen[-1], MessageComplete)
        assert seen[-1].text == WORDS and seen[-1].payload == {"reconciled": True}
        assert await turn == WORDS


async def test_a_turn_dropped_late_beyond_the_replay_buffer_streams_every_word_once(tmp_path):
    """Tests that a socket lost late in a long turn, past a tiny buffer, loses no word."""
    database = Database(tmp_path)
    token = database.token("frank")
    words = " ".join(f"w{i}" for i in range(40))
    options = '{"REPLAY_BUFFER_EVENTS": 3}'
    with GatewayServer(database, env={"HERMES_GATEWAY_OPTIONS": options}) as server:
        dialer = GatedDialer(server.url, token)
        async with Gateway(dialer, backoff=FAST) as gw, connect(server.url, token) as other:
            sid = (await gw.create_session("late")).session_id
            await other.resume(sid)
            turn = gw.prompt(sid, f"!sleep 2 {words}")
            deltas: list[str] = []
            async for event in turn:
                if isinstance(event, MessageDelta):
                    deltas.append(event.text)
                    if len(deltas) == 5:
                        dialer.gate.clear()
                        gw.link.transport.abort()
                        # Away while ten more words stream: the buffer keeps only three.
                        heard = 0
                        async for late in other.events():
                            heard += isinstance(late, MessageDelta)
                            if heard == 15:
                                break
                        dialer.gate.set()
        assert "".join(deltas) == words == await turn
