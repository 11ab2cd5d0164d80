"""
Cold starts: a session that is not live on any host (reaped, evicted, or its host died) is
revived from its stored row and transcript, once the reviving host has claimed it in the
registry; a stored session closed while no host held it is finalized the same way.
"""

from __future__ import annotations

import logging
import time

from django.utils import timezone

from ..conf import setting
from ..rpc.context import CallContext
from ..rpc.errors import RateLimited, SessionNotFound
from ..rpc.protocol import encode, event_message
from .cluster.router import SessionMoved
from .quota import check_session_quota
from .state import SESSION_ID, LiveSession, Phase

logger = logging.getLogger(__name__)


class ColdStarts:
    """How ``SessionHost`` revives stored sessions (a mixin: it shares the host's state)."""

    async def get_or_cold_start(self, ctx: CallContext, session_id: str) -> LiveSession:
        """The caller's session, cold-started from the database when it is not live."""
        session = self.sessions.get(session_id)
        if session is not None and session.user_id != ctx.user_id:
            # Another user's: looked for in the store exactly like an id not live here, so
            # the 4001 takes as long as for an unknown id (the lookup is filtered by user).
            session = None
        elif session is not None and session.phase is not Phase.ACTIVE:
            # Mid-teardown: wait for it to finish, then start afresh from the transcript.
            await session.closed.wait()
            session = None
        if session is None:
            return await self._cold_start(ctx, session_id)
        return session

    async def _cold_start(self, ctx: CallContext, session_id: str) -> LiveSession:
        if not SESSION_ID.match(session_id):
            raise SessionNotFound()
        # Concurrent resumes of one session share one cold start: never two live copies.
        # Per user as well: another user's call never joins (or waits on) the owner's.
        session = await self._starting.run(
            (session_id, ctx.user_id), lambda: self._start_from_store(ctx, session_id)
        )
        if session.user_id != ctx.user_id:
            raise SessionNotFound()
        return session

    async def _start_from_store(self, ctx: CallContext, session_id: str) -> LiveSession:
        """
        Revive a stored session here, within the caller's session quota and the live cap
        (as ``session.create``), once this host holds the registry's claim on it.
        """
        user_id = ctx.user_id
        stored = await self.store.load(session_id, user_id)
        if stored is None:
            raise SessionNotFound()
        await self._claim(session_id, user_id)
        try:
            # No await from this check to _add_live: concurrent cold starts cannot overrun it.
            check_session_quota(ctx, self.live_by_user[user_id])
        except RateLimited:
            await self._release_claim(session_id)
            raise
        session = self._new_live(
            session_id, user_id, stored.title, stored.created_at.isoformat(), stored.last_seq
        )
        session.history = stored.messages[-int(setting("HISTORY_LIMIT")) :]
        session.message_count = len(stored.messages)
        self._add_live(session)
        try:
            self.store.update(
                session_id,
                status="detached",
                close_reason="",
                closed_at=None,
                host_worker=self.worker_name,
                host_channel=self.channel_name,
            )
            self._reserve_seq(session)
            # The new seq bound is stored before any event can use it: if this host crashed
            # first, the next cold start would issue these seqs again.
            await self.store.flush()
            self.index.upsert(
                user_id, session_id, status="detached", host_channel=self.channel_name
            )
            self.counters["cold_starts"] += 1
            logger.info("cold-started session %s from its transcript", session_id)
            await self.reaper.enforce_cap(keep=session)
        finally:
            if not session.attached:
                # Detached until someone attaches: reapable like any other orphan (a
                # slash.exec on a reaped session must not leave a worker behind until the
                # TTL). Armed last: a short grace cannot run out before the caller has it.
                session.detached_at = time.monotonic()
                self.reaper.schedule(session)
        return session

    async def _claim(self, session_id: str, user_id: int) -> None:
        """
        Make this host the session's one host in the registry, atomically: it is free, ours,
        or its host is dead. Raises ``SessionMoved`` when a live host holds it (routing then
        sends the call there).
        """
        if not self.registry.shared:
            return
        entry = await self.registry.lookup(session_id)
        dead = ""
        if entry is not None and entry.host != self.channel_name:
            if await self.registry.alive(entry.host):
                raise SessionMoved()
            dead = entry.host
        if not await self.registry.claim(session_id, dead, self.channel_name, user_id):
            raise SessionMoved()
        if dead:
            logger.warning("host %s of session %s is dead; taking it over", dead, session_id)
            self.counters["takeovers"] += 1

    async def _close_stored(self, session_id: str, user_id: int, seq_bound: int) -> None:
        """
        Close a session whose host died, as teardown would have: ``session.closed`` for
        connections still in its group (attached through that host from other workers),
        the row finalized and the registry entry dropped.
        """
        await self._claim(session_id, user_id)  # a live host of it would close it itself
        seq = seq_bound + 1  # above any seq the dead host may have issued
        frame = encode(event_message("session.closed", {"reason": "closed"}, session_id, seq))
        await self._send_frame(session_id, "session.closed", frame)
        self.store.finalize(session_id, "closed", seq)
        self.index.upsert(
            user_id,
            session_id,
            status="closed",
            attached=False,
            last_activity=timezone.now().isoformat(),
        )
        await self._release_claim(session_id)
        self.counters["closed"] += 1
        logger.info("session %s closed after its host died (user %s)", session_id, user_id)
