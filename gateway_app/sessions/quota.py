"""
The per-user session quota: how many live sessions one user may hold on this host, checked
by ``session.create`` and by every cold start. At the quota, the user's least recently used
idle detached session is evicted to make room (a refresh storm leaves many behind); 4029 only
when every one of them is attached or busy. The quota counts this host's sessions only
(``SessionHost.live_by_user``): a user's sessions on other workers neither count nor go.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..conf import setting
from ..metrics import families
from ..models import CloseReason
from ..rpc.context import CallContext
from ..rpc.errors import RateLimited

if TYPE_CHECKING:
    from .host import SessionHost

logger = logging.getLogger(__name__)


async def make_room(ctx: CallContext, host: SessionHost) -> None:
    """
    Evict the caller's least recently used idle detached sessions on ``host`` until one more
    fits ``MAX_SESSIONS_PER_USER``, else raise its 4029. The caller adds the new session
    without awaiting after this returns, so concurrent calls cannot overrun the quota.
    """
    limit = setting("MAX_SESSIONS_PER_USER")
    while limit and host.live_by_user[ctx.user_id] >= limit:
        victim = host.reaper.least_recently_used(user_id=ctx.user_id)
        if victim is None:
            break
        logger.debug(
            "MAX_SESSIONS_PER_USER=%d reached by user=%s: evicting idle session %s",
            limit,
            ctx.caller.username,
            victim.id,
        )
        ctx.count("quota_evictions")
        host.counters["quota_evictions"] += 1
        await host.teardown(victim, CloseReason.EVICTED)
    check_session_quota(ctx, host.live_by_user[ctx.user_id])


def check_session_quota(ctx: CallContext, live: int) -> None:
    """Raise 4029 when the caller already has ``MAX_SESSIONS_PER_USER`` live sessions (none
    of them evictable, after ``make_room``)."""
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
    families.count_limit("sessions_per_user")
    ctx.count("limit_hits")
    ctx.count("limit_sessions_per_user")
    raise RateLimited(
        f"Too many live sessions: at most {limit} per user, all attached or busy;"
        " close one (or detach one) first",
        {"limit": "sessions_per_user", "max": limit, "live": live},
    )
