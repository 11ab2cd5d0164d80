"""``slash.exec``: run a slash command in the session's slash-worker subprocess."""

from __future__ import annotations

from typing import Any

from ...sessions.cluster.messages import Operation
from ...sessions.host import get_host
from ..context import CallContext
from ..dispatch import method
from ..errors import InvalidParams
from ..params import get_str


@method("slash.exec")
async def slash_exec(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    """Execute ``/name args`` in the session's slash worker (started on first use)."""
    session_id = get_str(params, "session_id")
    command = get_str(params, "command", max_length=4000)
    if not command.strip().startswith("/"):
        raise InvalidParams("command", "must start with '/'")
    host = await get_host()
    output = await host.router.call(ctx, Operation.SLASH, session_id, command=command.strip())
    return {"output": output}
