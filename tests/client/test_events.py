"""Event frames become typed dataclasses."""

from gateway_app.client.events import (
    ApprovalRequest,
    Event,
    MessageComplete,
    MessageDelta,
    parse_event,
)


def test_a_delta_frame_becomes_a_message_delta():
    """Tests that the payload's fields land on the typed event with its session and seq."""
    event = parse_event(
        {
            "type": "message.delta",
            "session_id": "s",
            "seq": 3,
            "payload": {"turn_id": "t", "text": "hi "},
        }
    )
    assert event == MessageDelta(session_id="s", seq=3, turn_id="t", text="hi ")


def test_missing_payload_fields_take_defaults():
    """Tests that a sparse payload still parses (a newer or older gateway may omit fields)."""
    event = parse_event({"type": "message.complete", "payload": {"text": "x"}})
    assert isinstance(event, MessageComplete) and event.interrupted is False and event.turn_id == ""


def test_extra_payload_fields_are_kept_in_payload():
    """Tests that fields the dataclass does not know stay readable in ``payload``."""
    payload = {"request_id": "r", "tool": "terminal", "description": "d", "new": 1}
    event = parse_event({"type": "approval.request", "payload": payload})
    assert isinstance(event, ApprovalRequest) and event.payload["new"] == 1


def test_an_unknown_type_is_a_plain_event():
    """Tests that event types of a later protocol arrive as Event with their type."""
    event = parse_event({"type": "future.thing", "payload": {"a": 1}})
    assert type(event) is Event and event.type == "future.thing" and event.payload == {"a": 1}
