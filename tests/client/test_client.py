"""Pure parts of the Gateway client."""

from gateway_app.client.client import Gateway, reply_to
from gateway_app.client.results import Message


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
