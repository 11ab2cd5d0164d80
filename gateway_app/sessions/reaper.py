"""
Reaping of orphaned sessions.

A detached session's reap is a *delayed channel message*: channels and channels-redis have no
delayed send, so the host arms a timer on its own loop and, when it fires, sends
``session.reap {session_id, epoch}`` through the channel layer to its own host channel. This
works identically with the InMemory and the Redis layer, and a reap scheduled because of a
disconnect on another worker still travels to (and is judged by) the host. Any attach bumps
the epoch, so a reap in flight arrives stale and is dropped; a local timer is also cancelled.
A periodic sweep backs every one-shot timer (lost message, deferred busy session) and applies
the idle TTL; the live-session cap (and a user's session quota, ``quota.py``) evicts the
least recently used idle detached session, found through a heap of the sessions that went
idle (checked when popped) rather than a scan of every live session on each create. A
session waiting on the user's answer is never reaped, so the sweep answers a question left
unattended past ``PENDING_QUESTION_TIMEOUT_S`` (deny, or an empty clarification): its turn
ends and the session is reaped as usual.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..conf import setting
from ..models import CloseReason
from .cluster import messages
from .state import LiveSession, Phase
from .tasks import Periodic

if TYPE_CHECKING:
    from .host import SessionHost

logger = logging.getLogger(__name__)

#: Evictions (the live-session cap is reached) are reported at most this often.
EVICTION_WARN_INTERVAL_S = 60.0


def is_reapable(session: LiveSession) -> bool:
    """Attached, running or waiting-on-the-user sessions are never reaped."""
    return session.phase is Phase.ACTIVE and not session.attached and not session.busy


class ThrottledCount:
    """Counts events for a report due at the first one, then at most once per ``interval``
    seconds of ``clock``, with the count since the last report."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic):
        self.interval = interval
        self.clock = clock
        self.unreported = 0
        self._next_due = 0.0

    def add(self, count: int) -> int | None:
        """Count ``count`` more; the count to report now, or None while the interval runs."""
        self.unreported += count
        now = self.clock()
        if now < self._next_due:
            return None
        due, self.unreported = self.unreported, 0
        self._next_due = now + self.interval
        return due


class Reaper:
    """Owns a host's reap timers, its sweep task and the live-session cap."""

    def __init__(self, host: SessionHost):
        self.host = host
        self._sends: set[asyncio.Task] = set()
        self.sweeper = Periodic(
            self.sweep,
            lambda: max(setting("SWEEP_INTERVAL_S"), 0.05),
            failure="reaper sweep failed",
            log=logger,
            traceback=True,
        )
        #: (last_activity, session id) of sessions that went idle and detached; entries are
        #: checked when popped (a session may have been attached, touched or closed since).
        self._idle: list[tuple[float, str]] = []
        #: Evictions, for the rate-limited warning that reports them.
        self.evictions = ThrottledCount(EVICTION_WARN_INTERVAL_S)

    @property
    def grace(self) -> float:
        return setting("REAP_GRACE_S")

    def start(self) -> None:
        self.sweeper.start()

    async def stop(self) -> None:
        await self.sweeper.stop()
        sends = list(self._sends)
        for task in sends:
            task.cancel()
        await asyncio.gather(*sends, return_exceptions=True)
        self._sends.clear()

    ### Delayed reap through the layer ###

    def schedule(self, session: LiveSession, delay: float | None = None) -> None:
        """Arm the reap of a detached session for its current epoch (no-op at grace 0)."""
        self._note_idle(session)
        grace = self.grace
        if grace <= 0 or session.phase is not Phase.ACTIVE:
            return
        self.cancel(session)
        delay = grace if delay is None else max(0.0, delay)
        loop = asyncio.get_running_loop()
        session.reap_timer = loop.call_later(delay, self._send_reap, session.id, session.epoch)

    def cancel(self, session: LiveSession) -> None:
        if session.reap_timer is not None:
            session.reap_timer.cancel()
            session.reap_timer = None

    def due_at(self, session: LiveSession) -> float | None:
        """Wall-clock time the pending reap is due, for the live page."""
        if session.reap_timer is None:
            return None
        return time.time() + (session.reap_timer.when() - asyncio.get_running_loop().time())

    def _send_reap(self, session_id: str, epoch: int) -> None:
        session = self.host.sessions.get(session_id)
        if session is not None:
            session.reap_timer = None
        message = messages.reap(session_id, epoch)
        task = asyncio.get_running_loop().create_task(
            self.host.layer.send(self.host.channel_name, message)
        )
        self._sends.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task) -> None:
        self._sends.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # The sweep will still catch the session once its grace has passed.
            logger.warning("could not send session.reap: %r", task.exception())

    async def handle(self, message: dict[str, Any]) -> None:
        """A ``session.reap`` arrived on the host channel: judge it now, atomically."""
        session = self.host.sessions.get(message.get("session_id", ""))
        if session is None or session.phase is not Phase.ACTIVE:
            return
        if message.get("epoch") != session.epoch:
            logger.debug("dropped stale reap of %s (epoch %s)", session.id, message.get("epoch"))
            return
        if not is_reapable(session):
            # Busy: re-armed by host.turn_finished/question_settled, and backed by the sweep.
            return
        await self.host.teardown(session, CloseReason.REAPED)

    def rearm(self, session: LiveSession) -> None:
        """A busy detached session went idle: reap it once what remains of its grace passes."""
        if is_reapable(session) and session.detached_at is not None:
            remaining = session.detached_at + self.grace - time.monotonic()
            self.schedule(session, remaining)

    ### Periodic sweep and cap ###

    async def sweep(self, now: float | None = None) -> dict[str, int]:
        """
        Answer questions left unattended past ``PENDING_QUESTION_TIMEOUT_S`` (their turns then
        finish and re-arm the reap), reap overdue detached sessions and idle-past-TTL ones;
        returns counts by reason.
        """
        now = time.monotonic() if now is None else now
        grace = self.grace
        ttl = setting("SESSION_TTL_S")
        question_timeout = setting("PENDING_QUESTION_TIMEOUT_S")
        counts = {CloseReason.REAPED: 0, CloseReason.TTL: 0, "answered": 0}
        for session in list(self.host.sessions.values()):
            if question_timeout > 0:
                for question in session.unattended_questions(now, question_timeout):
                    self.host.answer_unattended(session, question)
                    counts["answered"] += 1
            if not is_reapable(session):
                continue
            if grace > 0 and session.detached_at is not None and now - session.detached_at >= grace:
                reason = CloseReason.REAPED
            elif ttl > 0 and now - session.last_activity >= ttl:
                reason = CloseReason.TTL
            else:
                continue
            await self.host.teardown(session, reason)
            counts[reason] += 1
        return counts

    async def enforce_cap(self, keep: LiveSession | None = None) -> int:
        """
        Evict least recently used idle detached sessions beyond ``MAX_LIVE_SESSIONS``, never
        ``keep`` (a session just cold-started for a caller that has yet to use it).
        """
        limit = setting("MAX_LIVE_SESSIONS")
        evicted = 0
        while len(self.host.sessions) > limit:
            victim = self.least_recently_used(keep)
            if victim is None:
                logger.warning(
                    "%d live sessions exceed MAX_LIVE_SESSIONS=%d; none is evictable",
                    len(self.host.sessions),
                    limit,
                )
                break
            await self.host.teardown(victim, CloseReason.EVICTED)
            evicted += 1
        if evicted:
            self._report_evictions(evicted, limit)
        return evicted

    def _report_evictions(self, evicted: int, limit: int) -> None:
        """One warning for the first eviction, then at most one per interval with a count."""
        due = self.evictions.add(evicted)
        if due is None:
            return
        logger.warning(
            "MAX_LIVE_SESSIONS=%d reached: evicted %d least recently used idle session(s)"
            " since the last report (%d in all); next report in %.0fs at the earliest",
            limit,
            due,
            self.host.counters[CloseReason.EVICTED],
            EVICTION_WARN_INTERVAL_S,
        )

    def _note_idle(self, session: LiveSession) -> None:
        heapq.heappush(self._idle, (session.last_activity, session.id))
        if len(self._idle) > 2 * len(self.host.sessions) + 64:
            # Stale entries pile up when the cap is never reached: rebuild from what is true.
            self._idle = [
                (s.last_activity, s.id) for s in self.host.sessions.values() if is_reapable(s)
            ]
            heapq.heapify(self._idle)

    def least_recently_used(
        self, keep: LiveSession | None = None, user_id: int | None = None
    ) -> LiveSession | None:
        """
        The idle detached session used least recently (of ``user_id`` only, when given),
        never ``keep``: the one the cap, or the user's session quota, evicts.
        """
        kept: list[tuple[float, str]] = []
        try:
            while self._idle:
                last_activity, session_id = heapq.heappop(self._idle)
                session = self.host.sessions.get(session_id)
                if session is None or not is_reapable(session):
                    continue  # closed, or attached/busy since: noted again when idle again
                if session.last_activity != last_activity:
                    heapq.heappush(self._idle, (session.last_activity, session_id))
                    continue  # touched while detached: it waits its turn again
                if session is keep or (user_id is not None and session.user_id != user_id):
                    kept.append((last_activity, session_id))
                    continue
                return session
        finally:
            for entry in kept:
                heapq.heappush(self._idle, entry)
        # Backstop: a session that went idle without being noted is still found.
        candidates = [
            s
            for s in self.host.sessions.values()
            if is_reapable(s) and s is not keep and (user_id is None or s.user_id == user_id)
        ]
        return min(candidates, key=lambda s: s.last_activity, default=None)
