"""
The terminal tool as a session host offers it: the ``gateway_app.use_terminal`` permission of
the session's stored owner, checked from the database at each call; the sandbox; and the
sessions' scratch directories, removed with the session.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model

from ..agents import sandbox
from ..agents.tools import run_terminal
from ..conf import setting
from .state import LiveSession

logger = logging.getLogger(__name__)

PERMISSION = "gateway_app.use_terminal"
NOT_PERMITTED = (
    "not permitted: this account may not run commands with the terminal tool "
    f"(it needs the {PERMISSION} permission)"
)


@database_sync_to_async
def may_use_terminal(user_id: int) -> bool:
    """Whether the user (active, with the permission or a superuser) may run commands now."""
    user = get_user_model().objects.filter(pk=user_id).first()
    # has_perm is False for an inactive user, and True for an active superuser.
    return user is not None and user.has_perm(PERMISSION)


class TerminalTool:
    """One host's terminal tool: permission, sandbox and per-session scratch directories."""

    def __init__(self) -> None:
        self.scratch = sandbox.ScratchDirs()
        # Sessions that may have a directory: only their ends cost a thread (the base is
        # this host's own, so no other process adds one).
        self._scratched: set[str] = set()

    async def refusal(self, session: LiveSession) -> str | None:
        """The tool result when the session's owner may not run commands, or None."""
        if not await may_use_terminal(session.user_id):
            logger.info("terminal refused for user %s (no permission)", session.user_id)
            return NOT_PERMITTED
        config = sandbox.SandboxConfig.from_settings()
        reason = await asyncio.to_thread(sandbox.unavailable_reason, config)
        if reason is not None:
            logger.error("terminal tool disabled: %s", reason)
            return f"error: the terminal tool is disabled: {reason}"
        return None

    async def run(self, session: LiveSession, command: str) -> str:
        """Run an approved command in the session's sandbox (asked again: approval takes time)."""
        refusal = await self.refusal(session)
        if refusal is not None:
            return refusal
        scratch = await self.scratch_dir(session.id)
        return await run_terminal(
            command,
            scratch=scratch,
            timeout=float(setting("TERMINAL_TIMEOUT_S")),
            output_limit=int(setting("TERMINAL_OUTPUT_LIMIT")),
            config=sandbox.SandboxConfig.from_settings(),
        )

    async def scratch_dir(self, session_id: str) -> Path:
        """The session's scratch directory, created on first use."""
        self._scratched.add(session_id)
        return await asyncio.to_thread(self.scratch.ensure, session_id)

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
