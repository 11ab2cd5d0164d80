"""
Operator control of sessions from outside the host (admin actions, management commands):
requests travel through the channel layer to the session's host, so the one teardown runs
where the session lives, on whichever worker that is.
"""

from __future__ import annotations

import uuid

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.utils import timezone

from ..models import CloseReason, GatewaySession, SessionStatus
from .cluster.registry import HOST_KEY
from .host import current_host
from .state import TEARDOWN_MESSAGE, TEARDOWN_REASONS


def request_teardown(session: GatewaySession, reason: str) -> bool:
    """Ask the session's host to tear it down; returns False if it was not live."""
    if reason not in TEARDOWN_REASONS:
        raise ValueError(f"reason must be one of {TEARDOWN_REASONS}")
    if session.status == SessionStatus.CLOSED:
        return False
    if not session.host_channel or not _host_alive(session.host_channel):
        # No live host holds it (its worker died): finalize the row here.
        GatewaySession.objects.filter(pk=session.pk).update(
            status=SessionStatus.CLOSED,
            close_reason=CloseReason(reason),
            attached=0,
            closed_at=timezone.now(),
        )
        return True
    # The id lets the host drop a copy of this message pushed again (a replay).
    message = {
        "type": TEARDOWN_MESSAGE,
        "id": uuid.uuid4().hex,
        "session_id": session.pk,
        "reason": reason,
    }
    async_to_sync(get_channel_layer().send)(session.host_channel, message)
    return True


def _host_alive(channel: str) -> bool:
    host = current_host()
    if host is not None:
        return async_to_sync(host.host_alive)(channel)
    redis_url = getattr(settings, "REDIS_URL", "")
    if not redis_url:
        return False
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        return bool(client.exists(HOST_KEY.format(channel)))
    finally:
        client.close()
