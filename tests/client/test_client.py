"""Pure parts of the Gateway client."""

import asyncio
import json

from gateway_app.client.client import Gateway, reply_to
from gateway_app.client.connection import Backoff, LinkClosed
from gateway_app.client.errors import InternalError, WorkerDraining, error_from_wire
from gateway_app.client.events import MessageComplete, Reconnected, parse_event
from gateway_app.client.results import Message, Resumed
from gateway_app.rpc.codes import CLOSE_SERVICE_RESTART


def test_reply_to_finds_the_answer_to_the_prompt_not_the_last_message():
    """Tests that a turn reconciled after a gap gets its own reply, not a later turn's."""
    messages = [
        Message("user", "first"),
        Message("assistant", "one"),
        Message("user", "second"),
        Message("assistant", "two"),
    ]
    assert reply_to("first", messages) == "one"


def test_reply_to_is_empty_when_the_turn_stored_no_reply():
    """Tests that a prompt whose turn died before its reply reconciles to an empty text."""
    assert reply_to("lost", [Message("user", "lost")]) == ""


class _Recorder:
    """Stands in for a connected client: records the call, answers one page."""

    def __init__(self, result):
        self.result, self.calls = result, []

    async def call(self, method, params=None):
        self.calls.append((method, params))
        return self.result


ROW = {
    "session_id": "a" * 32,
    "title": "t",
    "status": "closed",
    "attached": False,
    "created_at": "2026-01-01T00:00:00+00:00",
    "last_activity": "2026-01-01T00:00:00+00:00",
    "messages": 0,
}


async def test_list_sessions_is_still_a_list_and_carries_next_cursor():
    """Tests that the old call (no arguments, no params sent) still gets a list of rows, now
    with the page's next_cursor."""
    fake = _Recorder({"sessions": [ROW], "next_cursor": "abc"})
    page = await Gateway.list_sessions(fake)
    assert fake.calls == [("session.list", None)]
    assert [row.session_id for row in page] == ["a" * 32] and page.next_cursor == "abc"


async def test_list_sessions_sends_only_the_given_page_params():
    """Tests that limit, cursor, status and query go out as given, absent ones not at all."""
    fake = _Recorder({"sessions": []})
    page = await Gateway.list_sessions(fake, limit=10, cursor="abc", query="x")
    assert fake.calls == [("session.list", {"limit": 10, "cursor": "abc", "query": "x"})]
    assert page == [] and page.next_cursor is None


async def test_history_sends_only_the_given_params_and_types_the_page():
    """Tests that Gateway.history sends session_id plus the given before/limit, and gives the
    page's messages (with ids and truncated) oldest first, has_more and next_before."""
    fake = _Recorder(
        {
            "messages": [
                {"id": 3, "role": "user", "content": "a"},
                {"id": 4, "role": "assistant", "content": "b", "truncated": True},
            ],
            "has_more": True,
            "next_before": 3,
        }
    )
    page = await Gateway.history(fake, "a" * 32, before=9, limit=2)
    assert fake.calls == [("session.history", {"session_id": "a" * 32, "before": 9, "limit": 2})]
    assert list(page.messages) == [
        Message("user", "a", id=3),
        Message("assistant", "b", id=4, truncated=True),
    ]
    assert page.has_more is True and page.next_before == 3


def test_resumed_messages_carry_their_ids():
    """Tests that session.resume's message ids reach the typed Resumed."""
    resumed = Resumed.from_wire(
        {"session_id": "s", "messages": [{"id": 7, "role": "user", "content": "x"}]}
    )
    assert resumed.messages == (Message("user", "x", id=7),)


def test_message_complete_says_whether_the_reply_was_cut():
    """Tests that the truncated flag of message.complete reaches the typed event."""
    event = parse_event(
        {"type": "message.complete", "payload": {"turn_id": "t", "text": "x", "truncated": True}}
    )
    assert isinstance(event, MessageComplete) and event.truncated is True


class _Link:
    """A link that answers nothing and ends with ``close_code`` once ``drop()`` is called."""

    ready = {"type": "gateway.ready", "payload": {"protocol": 1, "skin": {}}}

    def __init__(self):
        self.dropped = asyncio.Event()
        self.close_code = None

    def drop(self, code):
        self.close_code = code
        self.dropped.set()

    async def send(self, text):
        pass

    async def recv(self):
        await self.dropped.wait()
        raise LinkClosed(f"closed with code {self.close_code}", self.close_code)

    async def close(self):
        pass


async def redial_after(code):
    """The quick drops a gateway counts after its young link closed with ``code``."""
    links = [_Link(), _Link()]
    dialed = asyncio.Event()

    async def dial():
        if len(links) == 1:
            dialed.set()
        return links.pop(0)

    gateway = await Gateway(dial).open()
    try:
        first = gateway.link
        first.drop(code)
        await asyncio.wait_for(dialed.wait(), 5)
        return gateway._quick_drops
    finally:
        await gateway.close()


async def test_a_service_restart_close_redials_at_once_even_on_a_young_link():
    """Tests that a link closed with 1012 (the worker drains) is redialled at once, with no
    backoff, even when it had just opened."""
    assert await redial_after(CLOSE_SERVICE_RESTART) == 0


async def test_an_ordinary_drop_of_a_young_link_still_backs_off():
    """Tests that a link dropping right after it opened (1006) counts as a quick drop."""
    assert await redial_after(1006) == 1


class _AnsweringLink(_Link):
    """A link that answers each request with ``answer(method, params)``: a result or an error."""

    def __init__(self, answer):
        super().__init__()
        self.answer, self.sent = answer, []
        self.inbox = asyncio.Queue()

    async def send(self, text):
        message = json.loads(text)
        self.sent.append((message["method"], message.get("params")))
        reply = self.answer(message["method"], message.get("params"))
        self.inbox.put_nowait(json.dumps({"jsonrpc": "2.0", "id": message["id"], **reply}))

    async def recv(self):
        dropped = asyncio.ensure_future(self.dropped.wait())
        received = asyncio.ensure_future(self.inbox.get())
        done, _ = await asyncio.wait({dropped, received}, return_when=asyncio.FIRST_COMPLETED)
        if received in done:
            dropped.cancel()
            return received.result()
        received.cancel()
        raise LinkClosed(f"closed with code {self.close_code}", self.close_code)

    async def close(self):
        self.drop(1000)


SID = "b" * 32
DRAINING = {
    "error": {
        "code": -32603,
        "message": "This worker is restarting: reconnect and retry",
        "data": {"draining": True},
    }
}


def _resumed(method, params):
    return {"result": {"session_id": SID, "status": "live", "messages": [], "last_seq": 0}}


async def test_a_resume_refused_by_a_draining_worker_is_retried_on_the_next_link():
    """Tests that a held session whose resume meets a draining worker (-32603, draining) stays
    held and is resumed on the next connection, instead of being dropped."""
    created = {"result": {"session_id": SID, "title": "t", "created_at": "x"}}
    links = [
        _AnsweringLink(lambda method, params: created),
        _AnsweringLink(lambda method, params: DRAINING),
        _AnsweringLink(_resumed),
    ]
    dialed = list(links)

    async def dial():
        return links.pop(0)

    gateway = await Gateway(dial, backoff=Backoff(initial=0)).open()
    try:
        await gateway.create_session("t")
        dialed[0].drop(CLOSE_SERVICE_RESTART)
        async for event in gateway.events():
            if isinstance(event, Reconnected):
                break
        assert event.sessions == (SID,)
        assert gateway.sessions == (SID,)
        assert dialed[2].sent == [("session.resume", {"session_id": SID, "last_seq": 0})]
    finally:
        await gateway.close()


async def test_a_worker_that_stays_draining_is_redialled_with_growing_backoff():
    """Tests that only the first redial after a drain is immediate: when each new link meets a
    draining worker again, the quick drops grow, so the client backs off instead of spinning."""
    created = {"result": {"session_id": SID, "title": "t", "created_at": "x"}}
    links = [_AnsweringLink(lambda method, params: created)]
    links += [_AnsweringLink(lambda method, params: DRAINING) for _ in range(3)]
    links.append(_AnsweringLink(_resumed))
    first, quick_drops_at_dial = links[0], []

    async def dial():
        quick_drops_at_dial.append(gateway._quick_drops)
        return links.pop(0)

    gateway = Gateway(dial, backoff=Backoff(initial=0))
    await gateway.open()
    try:
        await gateway.create_session("t")
        first.drop(CLOSE_SERVICE_RESTART)
        async for event in gateway.events():
            if isinstance(event, Reconnected):
                break
        assert quick_drops_at_dial == [0, 0, 1, 2, 3]
    finally:
        await gateway.close()


def test_a_draining_refusal_is_its_own_internal_error():
    """Tests that -32603 with data.draining raises WorkerDraining (still an InternalError)."""
    error = error_from_wire(DRAINING["error"])
    assert isinstance(error, WorkerDraining) and isinstance(error, InternalError)
    assert error.code == -32603


async def test_every_held_session_is_resumed_from_its_own_last_seen_seq():
    """Tests that after a drop the next link resumes each held session with the last seq the
    client saw of that session, not one shared number."""
    ids = iter(["c" * 32, "d" * 32])

    def create(method, params):
        return {"result": {"session_id": next(ids), "title": "", "created_at": "x"}}

    def resumed(method, params):
        return {"result": {"session_id": params["session_id"], "status": "live", "messages": []}}

    first, second = _AnsweringLink(create), _AnsweringLink(resumed)
    links = [first, second]

    async def dial():
        return links.pop(0)

    gateway = await Gateway(dial, backoff=Backoff(initial=0)).open()
    try:
        one = (await gateway.create_session()).session_id
        two = (await gateway.create_session()).session_id
        for sid, seq in ((one, 7), (two, 3)):
            event = {"type": "session.closing", "session_id": sid, "seq": seq, "payload": {}}
            first.inbox.put_nowait(
                json.dumps({"jsonrpc": "2.0", "method": "event", "params": event})
            )
        async for event in gateway.events():
            if event.session_id == two:
                break
        first.drop(1006)
        async for event in gateway.events():
            if isinstance(event, Reconnected):
                break
        assert sorted(second.sent, key=lambda sent: sent[1]["session_id"]) == [
            ("session.resume", {"session_id": one, "last_seq": 7}),
            ("session.resume", {"session_id": two, "last_seq": 3}),
        ]
        assert set(event.sessions) == {one, two}
    finally:
        await gateway.close()
