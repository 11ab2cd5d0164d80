"""
The tools as a session host offers them: a tool's ``permission`` held by the session's stored
owner, checked from the database at each call, and the sessions' scratch directories (the
terminal tool's cwd), removed with the session.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model

from ..agents import sandbox
from ..agents.tools import Tool
from ..agents.tools.terminal import NOT_PERMITTED, PERMISSION
from .state import LiveSession

__all__ = ["NOT_PERMITTED", "PERMISSION", "ToolHost", "has_permission"]

logger = logging.getLogger(__name__)


@database_sync_to_async
def has_permission(user_id: int, permission: str) -> bool:
    """Whether the user (active, with the permission or a superuser) holds it now."""
    user = get_user_model().objects.filter(pk=user_id).first()
    # has_perm is False for an inactive user, and True for an active superuser.
    return user is not None and user.has_perm(permission)


class ToolHost:
    """One host's side of the tools: permissions and per-session scratch directories."""

    def __init__(self) -> None:
        self.scratch = sandbox.ScratchDirs()
        # Sessions that may have a directory: only their ends cost a thread (the base is
        # this host's own, so no other process adds one).
        self._scratched: set[str] = set()

    async def refusal(self, session: LiveSession, tool: Tool) -> str | None:
        """The tool result when the session's owner lacks the tool's permission, or None."""
        if tool.permission and not await has_permission(session.user_id, tool.permission):
            logger.info("tool %s refused for user %s (no permission)", tool.name, session.user_id)
            return tool.not_permitted()
        return None

    async def scratch_dir(self, session: LiveSession) -> Path:
        """The session's scratch directory, created on first use."""
        self._scratched.add(session.id)
        return await asyncio.to_thread(self.scratch.ensure, session.id)

    async def end_session(self, session_id: str) -> None:
        """Delete the session's scratch directory (its teardown, or the host giving it up)."""
        if session_id not in self._scratched:
            return
        self._scratched.discard(session_id)
        try:
            await asyncio.to_thread(self.scratch.remove, session_id)
        except OSError:
            logger.exception("could not remove the scratch directory of session %s", session_id)

    async def stop(self) -> None:
        """Delete every scratch directory of this host."""
        try:
            await asyncio.to_thread(self.scratch.remove_all)
        except OSError:
            logger.exception("could not remove the scratch directories %s", self.scratch.base)
