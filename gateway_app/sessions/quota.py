"""
The per-user session quota: how many live sessions one user may hold on the gateway, checked
by ``session.create`` and by every cold start.
"""

from __future__ import annotations

import logging

from ..conf import setting
from ..rpc.context import CallContext
from ..rpc.errors import RateLimited

logger = logging.getLogger(__name__)


def check_session_quota(ctx: CallContext, live: int) -> None:
    """Raise 4029 when the caller already has ``MAX_SESSIONS_PER_USER`` live sessions."""
    limit = setting("MAX_SESSIONS_PER_USER")
    if not limit or live < limit:
        return
    logger.warning(
        "limit sessions_per_user hit by user=%s peer=%s transport=%s: %s live >= %s",
        ctx.caller.username,
        ctx.peer or "-",
        ctx.transport,
        live,
        limit,
    )
    ctx.count("limit_hits")
    ctx.count("limit_sessions_per_user")
    raise RateLimited(
        f"Too many live sessions: at most {limit} per user; close one (or let a"
        " detached one be reaped) first",
        {"limit": "sessions_per_user", "max": limit, "live": live},
    )
