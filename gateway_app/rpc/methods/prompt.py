"""``prompt.submit``: start an agent turn; its output arrives as session events."""

from __future__ import annotations

from typing import Any

from ...conf import setting
from ...sessions.cluster.messages import Operation
from ...sessions.host import get_host
from ..context import CallContext
from ..dispatch import method
from ..params import get_str
from ..schema import SESSION_ID, obj, string


@method(
    "prompt.submit",
    params=obj(
        {"session_id": SESSION_ID, "text": string("the prompt (MAX_PROMPT_CHARS)", minLength=1)},
        required=("session_id", "text"),
    ),
    result=obj(
        {"accepted": {"const": True}, "turn_id": string("the turn's events carry it")},
        required=("accepted", "turn_id"),
    ),
)
async def prompt_submit(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    """Start a turn (re-attaching a detached session); answers at once."""
    session_id = get_str(params, "session_id")
    text = get_str(params, "text", max_length=setting("MAX_PROMPT_CHARS"), allow_empty=False)
    host = await get_host()
    turn_id = await host.router.call(ctx, Operation.SUBMIT, session_id, text=text)
    return {"accepted": True, "turn_id": turn_id}
