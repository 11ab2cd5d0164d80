"""
The payload of every event (``{"method": "event", "params": {"type", "session_id"?, "seq"?,
"payload"}}``) as JSON Schema, for the protocol reference's components.
"""

from __future__ import annotations

from .schema import Schema, integer, string


def _payload(
    properties: dict[str, Schema], description: str, optional: dict[str, Schema] | None = None
) -> Schema:
    # Open objects: clients must ignore fields they do not know (additions are allowed).
    return {
        "type": "object",
        "description": description,
        "properties": {**properties, **(optional or {})},
        "required": list(properties),
    }


TURN_ID = string("the turn (prompt.submit's turn_id)")
REQUEST_ID = string("answered by approval.respond / clarify.respond")

EVENTS: dict[str, Schema] = {
    "gateway.ready": _payload(
        {
            "skin": {"type": "object", "description": "name, accent, banner"},
            "protocol": integer("the protocol version", minimum=1),
        },
        "the first frame of every connection",
    ),
    "message.user": _payload(
        {"turn_id": TURN_ID, "text": string()},
        "a turn's prompt, sent right before its message.start (additive)",
    ),
    "message.start": _payload({"turn_id": TURN_ID}, "a turn started"),
    "message.delta": _payload(
        {"turn_id": TURN_ID, "text": string()}, "streamed text (deltas may be coalesced)"
    ),
    "tool.start": _payload(
        {"turn_id": TURN_ID, "tool_id": string(), "name": string(), "args": {}},
        "the agent runs a tool",
    ),
    "tool.complete": _payload(
        {"turn_id": TURN_ID, "tool_id": string(), "result": {}}, "a tool run ended"
    ),
    "approval.request": _payload(
        {"request_id": REQUEST_ID, "tool": string(), "description": string()},
        "a tool run waits for approval.respond",
    ),
    "clarify.request": _payload(
        {"request_id": REQUEST_ID, "question": string()}, "a question waits for clarify.respond"
    ),
    "message.complete": _payload(
        {"turn_id": TURN_ID, "text": string(), "interrupted": {"type": "boolean"}},
        "a turn ended; text is the concatenation of its deltas",
        {
            "truncated": {
                "const": True,
                "description": "the reply reached MAX_MESSAGE_CHARS: cut there and marked "
                "(additive; absent otherwise)",
            }
        },
    ),
    "error": _payload({"message": string()}, "a turn failed"),
    "session.closed": _payload(
        {"reason": string(enum=["closed", "reaped", "ttl", "evicted"])}, "the session ended"
    ),
}
