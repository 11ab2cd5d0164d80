"""
Operator control of sessions from outside the host (admin actions, management commands):
requests travel through the channel layer to the session's host, so the one teardown runs
where the session lives, on whichever worker that is.
"""

from __future__ import annotations

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.utils import timezone

from ..models import CloseReason, GatewaySession, SessionStatus
from .host import TEARDOWN_MESSAGE, TEARDOWN_REASONS


def request_teardown(session: GatewaySession, reason: str) -> bool:
    """Ask the session's host to tear it down; returns False if it was not live."""
    if reason not in TEARDOWN_REASONS:
        raise ValueError(f"reason must be one of {TEARDOWN_REASONS}")
    if session.status == SessionStatus.CLOSED:
        return False
    if not session.host_channel:
        # Never hosted (or hosted before host channels existed): finalize the row here.
        GatewaySession.objects.filter(pk=session.pk).update(
            status=SessionStatus.CLOSED,
            close_reason=CloseReason(reason),
            attached=0,
            closed_at=timezone.now(),
        )
        return True
    message = {"type": TEARDOWN_MESSAGE, "session_id": session.pk, "reason": reason}
    async_to_sync(get_channel_layer().send)(session.host_channel, message)
    return True
