"""Pure parts of the Gateway client."""

from gateway_app.client.client import reply_to
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
