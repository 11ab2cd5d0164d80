"""``slash.exec``: run a slash command in the session's slash-worker subprocess."""

from __future__ import annotations

from typing import Any

from ...sessions.cluster.messages import Operation
from ...sessions.host import get_host
from ..context import CallContext
from ..dispatch import method
from ..errors import InvalidParams
from ..params import get_str
from ..schema import SESSION_ID, obj, string


@method(
    "slash.exec",
    params=obj(
        {
            "session_id": SESSION_ID,
            "command": string("/name args", maxLength=4000, pattern="^\\s*/"),
        },
        required=("session_id", "command"),
    ),
    result=obj({"output": string()}, required=("output",)),
)
async def slash_exec(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    """Execute ``/name args`` in the session's slash worker (started on first use)."""
    session_id = get_str(params, "session_id")
    command = get_str(params, "command", max_length=4000)
    if not command.strip().startswith("/"):
        raise InvalidParams("command", "must start with '/'")
    host = await get_host()
    output = await host.router.call(ctx, Operation.SLASH, session_id, command=command.strip())
    return {"output": output}
