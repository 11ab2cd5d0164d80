"""
Cold starts: a session that is not live on any host (reaped, evicted, or its host died) is
revived from its stored row and transcript, once the reviving host has claimed it in the
registry; a stored session closed while no host held it is finalized the same way.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from ..conf import setting
from ..models import CloseReason, SessionStatus
from ..rpc.context import CallContext
from ..rpc.errors import SessionNotFound
from ..rpc.protocol import encode, event_message
from ..singleflight import SingleFlight
from .cluster.router import SessionMoved
from .quota import make_room
from .state import SESSION_ID, LiveSession, Phase

if TYPE_CHECKING:
    from .cluster.registry import LocalRegistry
    from .host import SessionHost
    from .store import SessionStore

logger = logging.getLogger(__name__)


class ColdStarter:
    """Revives stored sessions on its host, and closes those no live host holds."""

    def __init__(self, host: SessionHost, registry: LocalRegistry, store: SessionStore):
        self.host = host
        self.registry = registry
        self.store = store
        self._starting: SingleFlight[LiveSession] = SingleFlight()

    async def get_or_cold_start(self, ctx: CallContext, session_id: str) -> LiveSession:
        """The caller's session, cold-started from the database when it is not live."""
        session = self.host.sessions.get(session_id)
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
        host = self.host
        host.refuse_if_draining()
        user_id = ctx.user_id
        stored = await self.store.load(session_id, user_id, messages=setting("HISTORY_LIMIT"))
        if stored is None:
            raise SessionNotFound()
        await self.claim(session_id, user_id)
        try:
            # No await from its last check to add_live: concurrent cold starts cannot overrun
            # the quota. An idle detached session of the caller's may be evicted for it.
            await make_room(ctx, host)
            # A drain that began while the row was read has already taken its list of
            # sessions: one added now would live on here, hosted by a withdrawn host.
            host.refuse_if_draining()
        except BaseException:
            await host.release_claim(session_id)
            raise
        session = host.new_live(
            session_id, user_id, stored.title, stored.created_at.isoformat(), stored.last_seq
        )
        session.set_history(stored.messages, stored.message_count)
        host.add_live(session)
        try:
            self.store.update(
                session_id,
                status=SessionStatus.DETACHED,
                close_reason="",
                closed_at=None,
                host_worker=host.worker_name,
                host_channel=host.channel_name,
            )
            host.reserve_seq(session)
            # The new seq bound is stored before any event can use it: if this host crashed
            # first, the next cold start would issue these seqs again.
            await self.store.flush()
            if not await self.store.hosted_by([session_id], host.channel_name):
                # Deleted since it was read (the stored-history quota, gateway_cleanup): the
                # revival wrote nothing, and nothing of it may live on.
                await self._abandon(session)
                raise SessionNotFound()
            host.index.upsert(
                user_id, session_id, status=SessionStatus.DETACHED, host_channel=host.channel_name
            )
            host.counters["cold_starts"] += 1
            logger.info("cold-started session %s from its transcript", session_id)
            await host.reaper.enforce_cap(keep=session)
        finally:
            if not session.attached:
                # Detached until someone attaches: reapable like any other orphan (a
                # slash.exec on a reaped session must not leave a worker behind until the
                # TTL). Armed last: a short grace cannot run out before the caller has it.
                session.detached_at = time.monotonic()
                host.reaper.schedule(session)
        return session

    async def _abandon(self, session: LiveSession) -> None:
        """Undo a revival no row backs: the live entry, the claim; waiters start afresh."""
        self.host.drop_live(session)
        session.phase = Phase.CLOSED
        session.closed.set()
        await self.host.release_claim(session.id)
        logger.info("session %s was deleted while it cold-started", session.id)

    async def claim(self, session_id: str, user_id: int) -> None:
        """
        Make this host the session's one host in the registry, atomically: it is free, ours,
        or its host is dead. Raises ``SessionMoved`` when a live host holds it (routing then
        sends the call there).
        """
        if not self.registry.shared:
            return
        own = self.host.channel_name
        entry = await self.registry.lookup(session_id)
        dead = ""
        if entry is not None and entry.host != own:
            if await self.registry.alive(entry.host):
                raise SessionMoved()
            dead = entry.host
        if not await self.registry.claim(session_id, dead, own, user_id):
            raise SessionMoved()
        if dead:
            logger.warning("host %s of session %s is dead; taking it over", dead, session_id)
            self.host.counters["takeovers"] += 1

    async def close_stored(self, session_id: str, user_id: int, seq_bound: int) -> None:
        """
        Close a session whose host died, as teardown would have: ``session.closed`` for
        connections still in its group (attached through that host from other workers),
        the row finalized and the registry entry dropped.
        """
        await self.claim(session_id, user_id)  # a live host of it would close it itself
        seq = seq_bound + 1  # above any seq the dead host may have issued
        reason = CloseReason.CLOSED
        frame = encode(event_message("session.closed", {"reason": reason}, session_id, seq))
        await self.host.send_frame(session_id, user_id, "session.closed", frame)
        self.host.finalize_row(session_id, user_id, reason, seq, after="after its host died")
        await self.host.release_claim(session_id)
