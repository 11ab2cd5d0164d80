"""Answers to the questions a turn asks: approvals and clarifications."""

from __future__ import annotations

from typing import Any

from ...conf import setting
from ...sessions.cluster.messages import Operation
from ...sessions.host import get_host
from ..context import CallContext
from ..dispatch import method
from ..params import get_choice, get_str
from ..schema import OK, SESSION_ID, obj, string

REQUEST_ID = string("the request_id of the approval.request / clarify.request event")


@method(
    "approval.respond",
    params=obj(
        {
            "session_id": SESSION_ID,
            "request_id": REQUEST_ID,
            "choice": string(enum=["once", "session", "deny"]),
        },
        required=("session_id", "request_id", "choice"),
    ),
    result=OK,
)
async def approval_respond(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    """Approve (once or for the session) or deny a pending tool run."""
    session_id = get_str(params, "session_id")
    request_id = get_str(params, "request_id")
    choice = get_choice(params, "choice", ("once", "session", "deny"))
    host = await get_host()
    await host.router.call(
        ctx, Operation.RESPOND, session_id, kind="approval", request_id=request_id, answer=choice
    )
    return {"ok": True}


@method(
    "clarify.respond",
    params=obj(
        {
            "session_id": SESSION_ID,
            "request_id": REQUEST_ID,
            "answer": string("the answer (MAX_PROMPT_CHARS)"),
        },
        required=("session_id", "request_id", "answer"),
    ),
    result=OK,
)
async def clarify_respond(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    """Answer a pending clarify question."""
    session_id = get_str(params, "session_id")
    request_id = get_str(params, "request_id")
    answer = get_str(params, "answer", max_length=setting("MAX_PROMPT_CHARS"))
    host = await get_host()
    await host.router.call(
        ctx, Operation.RESPOND, session_id, kind="clarify", request_id=request_id, answer=answer
    )
    return {"ok": True}
