"""JSON-RPC framing and envelope validation (pure functions, no I/O)."""

import json

import pytest

from gateway_app.rpc.errors import InvalidParams, InvalidRequest, ParseError
from gateway_app.rpc.protocol import (
    Rejected,
    Request,
    encode,
    event_message,
    parse_frame,
    parse_line,
    result_message,
)


def test_frame_with_several_lines_yields_each_request_in_order():
    """Tests that a multi-line frame is split into its requests, in order."""
    frame = parse_frame(
        '{"jsonrpc":"2.0","id":1,"method":"a"}\n{"jsonrpc":"2.0","id":2,"method":"b"}'
    )
    assert [item.method for item in frame.items] == ["a", "b"]


def test_blank_lines_and_surrounding_whitespace_are_ignored():
    """Tests that blank lines and whitespace around messages are ignored."""
    frame = parse_frame('\n   \n  {"jsonrpc":"2.0","id":1,"method":"a"}  \r\n\n')
    assert len(frame.items) == 1


def test_invalid_json_is_a_parse_error_with_null_id():
    """Tests that a line that is not JSON gives -32700 with id null."""
    item = parse_line("{nope")
    assert isinstance(item, Rejected) and isinstance(item.error, ParseError)
    assert item.id is None


@pytest.mark.parametrize("line", ["[" * 100000, "1" * 5000])
def test_pathological_json_is_a_parse_error_not_a_crash(line):
    """Tests that deep nesting and over-long integers are parse errors."""
    item = parse_line(line)
    assert isinstance(item, Rejected) and item.error.code == -32700


@pytest.mark.parametrize(
    ("message", "expected_id"),
    [
        ([{"jsonrpc": "2.0", "id": 1, "method": "a"}], None),
        ({"jsonrpc": "1.0", "id": 7, "method": "a"}, 7),
        ({"id": 8, "method": "a"}, 8),
        ({"jsonrpc": "2.0", "id": 9}, 9),
        ({"jsonrpc": "2.0", "id": 10, "method": 5}, 10),
        ({"jsonrpc": "2.0", "id": 11, "method": ""}, 11),
        ({"jsonrpc": "2.0", "id": 1.5, "method": "a"}, None),
        ({"jsonrpc": "2.0", "id": True, "method": "a"}, None),
        ({"jsonrpc": "2.0", "id": None, "method": "a"}, None),
        ({"jsonrpc": "2.0", "id": {"x": 1}, "method": "a"}, None),
        ("just a string", None),
        (42, None),
    ],
)
def test_non_request_json_is_an_invalid_request_with_readable_id(message, expected_id):
    """Tests that valid JSON that is not a request object gives -32600 and its id if readable."""
    item = parse_line(json.dumps(message))
    assert isinstance(item, Rejected) and isinstance(item.error, InvalidRequest)
    assert item.id == expected_id


def test_params_of_wrong_type_is_invalid_params_naming_params():
    """Tests that non-object params give -32602 naming the field."""
    item = parse_line('{"jsonrpc":"2.0","id":3,"method":"a","params":[1,2]}')
    assert isinstance(item, Rejected) and isinstance(item.error, InvalidParams)
    assert "params" in item.error.message and item.id == 3


def test_params_of_wrong_type_in_a_notification_are_rejected_unanswered():
    """Tests that a notification with non-object params is refused as a notification, so
    dispatch drops it instead of answering it."""
    item = parse_line('{"jsonrpc":"2.0","method":"a","params":[1]}')
    assert isinstance(item, Rejected) and isinstance(item.error, InvalidParams)
    assert item.notification and item.id is None


@pytest.mark.parametrize(
    "message",
    [
        {"jsonrpc": "2.0"},
        {"jsonrpc": "2.0", "method": 5},
        {"jsonrpc": "1.0", "method": "a"},
        {"method": "a", "params": [1]},
    ],
)
def test_an_invalid_request_without_id_is_not_a_notification(message):
    """Tests that a message without id that is no valid request is answered -32600, not
    dropped as a notification."""
    item = parse_line(json.dumps(message))
    assert isinstance(item, Rejected) and isinstance(item.error, InvalidRequest)
    assert not item.notification and item.id is None


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_literals_are_parse_errors(literal):
    """Tests that NaN/Infinity/-Infinity, which Python's json accepts but JSON does not, give
    -32700 with id null."""
    item = parse_line(f'{{"jsonrpc":"2.0","id":1,"method":"a","params":{{"x":{literal}}}}}')
    assert isinstance(item, Rejected) and isinstance(item.error, ParseError)
    assert item.id is None


def test_message_without_id_is_a_notification():
    """Tests that a request without id is a notification."""
    item = parse_line('{"jsonrpc":"2.0","method":"gateway.ping"}')
    assert isinstance(item, Request) and item.notification


def test_a_lone_surrogate_anywhere_is_refused_with_the_request_id():
    """Tests that a string no UTF-8 store can hold (a lone \\udfff escape, here in a nested
    param) is refused as an invalid request that still names its id."""
    item = parse_line(
        r'{"jsonrpc":"2.0","id":7,"method":"session.create","params":'
        r'{"title":["ok","x\udfff"]}}'
    )
    assert isinstance(item, Rejected) and isinstance(item.error, InvalidRequest)
    assert item.id == 7 and "surrogate" in item.error.message


def test_a_notification_with_a_lone_surrogate_is_dropped():
    """Tests that a refused notification stays unanswered, as every notification does."""
    item = parse_line(r'{"jsonrpc":"2.0","method":"prompt.submit","params":{"\ud800":1}}')
    assert isinstance(item, Rejected) and item.notification


def test_escaped_surrogate_pairs_are_ordinary_characters():
    """Tests that a valid escaped pair (an emoji) passes as the one character it encodes."""
    item = parse_line(r'{"jsonrpc":"2.0","id":1,"method":"m","params":{"t":"\ud83d\ude00"}}')
    assert isinstance(item, Request) and item.params == {"t": "\U0001f600"}


def test_missing_params_become_an_empty_object():
    """Tests that absent params are treated as {}."""
    item = parse_line('{"jsonrpc":"2.0","id":"x","method":"gateway.ping"}')
    assert isinstance(item, Request) and item.params == {} and item.id == "x"


def test_encode_escapes_lone_surrogates_so_the_frame_is_valid_utf8():
    """Tests that encoded frames stay single-line and UTF-8 safe even with lone surrogates."""
    text = encode(event_message("message.delta", {"text": "a\ud800b\nc"}, "s", 1))
    assert "\n" not in text
    text.encode("utf-8")
    assert json.loads(text)["params"]["payload"]["text"] == "a\ud800b\nc"


def test_encode_sends_unicode_as_utf8_text_on_one_line():
    """Tests that non-ASCII text goes out unescaped (smaller frames) and still on one line."""
    text = encode(event_message("message.delta", {"text": "héllo 🌍\nnext"}, "s", 1))
    assert "héllo 🌍" in text and "\n" not in text.replace("\\n", "")
    assert json.loads(text)["params"]["payload"]["text"] == "héllo 🌍\nnext"


def test_encode_falls_back_for_integers_beyond_64_bits():
    """Tests that an id no 64-bit encoder can write (a client may send one) is still echoed."""
    assert json.loads(encode(result_message(2**70, {"ok": True}))) == {
        "jsonrpc": "2.0",
        "id": 2**70,
        "result": {"ok": True},
    }


def test_event_carries_session_id_and_seq_only_when_given():
    """Tests that gateway events have no session_id/seq and session events do."""
    assert "seq" not in event_message("gateway.ready", {})["params"]
    params = event_message("x", {}, "sid", 4)["params"]
    assert params["session_id"] == "sid" and params["seq"] == 4
