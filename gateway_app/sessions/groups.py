"""
Channel layers drop a group membership ``group_expiry`` (a day by default) after it was
made, however busy the connection: the host joins its groups again every ``GROUP_REFRESH_S``
so a socket open for longer still gets its session's events.
"""

from __future__ import annotations

import logging
from typing import Protocol

from channels.layers import BaseChannelLayer

from ..auth import tokens
from ..conf import setting
from .state import LiveSession
from .tasks import Periodic

logger = logging.getLogger(__name__)


class GroupedHost(Protocol):
    channel_name: str
    sessions: dict[str, LiveSession]


class GroupRefresher:
    """Renews the host's revocations group and each attached connection's session group."""

    def __init__(self, layer: BaseChannelLayer, host: GroupedHost):
        self.layer = layer
        self.host = host
        self.periodic = Periodic(
            self.refresh,
            lambda: max(setting("GROUP_REFRESH_S"), 0.05),
            failure="refreshing group memberships failed",
            log=logger,
        )

    def start(self) -> None:
        self.periodic.start()

    async def stop(self) -> None:
        await self.periodic.stop()

    async def refresh(self) -> int:
        """Join again every group this host's messages travel by; returns how many."""
        await self.layer.group_add(tokens.REVOCATIONS_GROUP, self.host.channel_name)
        renewed = 1
        for session in list(self.host.sessions.values()):
            for channel in list(session.attached):
                await self.layer.group_add(session.group, channel)
                renewed += 1
        return renewed
