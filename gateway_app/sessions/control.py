"""
Operator control of sessions from outside the host (admin actions, management commands):
requests travel through the channel layer to the session's host, so the one teardown runs
where the session lives, on whichever worker that is.
"""

from __future__ import annotations

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from ..models import GatewaySession, SessionStatus
from .cluster import messages
from .cluster.messages import TEARDOWN_REASONS, TeardownReason
from .cluster.registry import SyncRegistry
from .host import current_host
from .store import finalize_orphan_sync


def request_teardown(session: GatewaySession, reason: TeardownReason) -> bool:
    """Ask the session's host to tear it down; returns False if it was not live."""
    if reason not in TEARDOWN_REASONS:
        raise ValueError(f"reason must be one of {TEARDOWN_REASONS}")
    if session.status == SessionStatus.CLOSED:
        return False
    if not session.host_channel or not _host_alive(session.host_channel):
        # No live host holds it (its worker died): finalize the row here.
        finalize_orphan_sync(session.pk, reason)
        return True
    async_to_sync(get_channel_layer().send)(
        session.host_channel, messages.teardown(session.pk, reason)
    )
    return True


def request_drain(worker_name: str) -> list[str]:
    """Ask every live host of the named worker to drain; returns the channels asked."""
    host = current_host()
    if host is not None and host.worker_name == worker_name:
        channels = [host.channel_name]
    else:
        channels = SyncRegistry.from_settings().named(worker_name)
    for channel in channels:
        async_to_sync(get_channel_layer().send)(channel, messages.drain())
    return channels


def _host_alive(channel: str) -> bool:
    host = current_host()
    if host is not None:
        return async_to_sync(host.host_alive)(channel)
    return SyncRegistry.from_settings().alive(channel)
