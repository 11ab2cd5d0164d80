"""
The session host: the one owner of this worker's live sessions.

Every mutation of live-session state happens here, on the worker's event loop: create,
attach/detach (with epochs), turns, answers to questions, slash commands and the single
teardown shared by close, reap, TTL and eviction. Events are published to the session's
channel-layer group, so handlers never write to a socket and any attached connection (on
any worker) receives them in ``seq`` order. The host owns its collaborators, each given what
it needs: the host channel (``hostchannel.py``), the heartbeat (``cluster/heartbeat.py``),
group refresh (``groups.py``), the orphan settler (``orphans.py``), cold starts
(``coldstart.py``), the reaper and the router; none keeps live-session state of its own.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, NamedTuple

from channels.layers import BaseChannelLayer, get_channel_layer
from django.utils import timezone

from .. import signals
from ..agents import TurnUser, close_agent, get_agent
from ..auth import tokens
from ..conf import registry_redis_url, setting
from ..dashboard.samples import Sampler
from ..models import CloseReason, SessionStatus, new_session_id
from ..rpc.context import CallContext
from ..rpc.errors import (
    InternalError,
    InvalidParams,
    LayerUnavailable,
    SessionBusy,
    SessionNotFound,
    WorkerDraining,
)
from ..rpc.protocol import encode, event_message
from ..slash.client import SlashClient, SlashError
from ..slash.commands import command_name
from ..slash.installed import installed
from .cluster.heartbeat import Heartbeat
from .cluster.registry import LocalRegistry, build_registry
from .cluster.router import SessionRouter
from .cluster.signing import CLOCK_SKEW_S
from .coldstart import ColdStarter
from .drain import DRAINED, worker_drain
from .emitter import SignalEmitter
from .groups import GroupRefresher
from .hostchannel import HostChannel
from .index import SessionIndex
from .orphans import OrphanSettler
from .reaper import Reaper
from .replay import ReplayBuffer, running_turn
from .seen import SeenIds
from .state import (
    SESSION_ID,
    LiveSession,
    PendingQuestion,
    Phase,
    SessionCounts,
    event_message_for,
    group_name,
    recent_messages,
)
from .store import SessionStore
from .tasks import TaskSet
from .terminal import ToolHost
from .turn import TurnRunner

logger = logging.getLogger(__name__)

#: The newest transcript messages a slash command that reads the transcript is given.
SLASH_TRANSCRIPT_MESSAGES = 200
#: Seqs reserved at a time in the session's row: ``last_seq`` there stays between
#: SEQ_RESERVE / 2 and SEQ_RESERVE above the seqs in use (rewritten, write-behind, when half
#: is used: one write per SEQ_RESERVE / 2 events), so a session revived after its host
#: crashed continues above every seq a client may have seen.
SEQ_RESERVE = 1000
#: What a question gets when it waited PENDING_QUESTION_TIMEOUT_S with nobody attached.
UNATTENDED_ANSWERS = {"approval": "deny", "clarify": ""}


class Published(NamedTuple):
    seq: int
    frame: str


class SessionHost:
    """Live sessions of one worker, their events, timers and subprocesses."""

    def __init__(
        self,
        layer: BaseChannelLayer,
        worker_name: str = "",
        registry: LocalRegistry | None = None,
    ):
        self.layer = layer
        self.worker_name = worker_name or f"{socket.gethostname()}:{os.getpid()}"
        self.channel_name = ""
        self.sessions: dict[str, LiveSession] = {}
        #: Live sessions per user on this host (the MAX_SESSIONS_PER_USER quota).
        self.live_by_user: Counter = Counter()
        self.connections: dict[str, CallContext] = {}
        #: Set each time a connection closed (a drain waits for its connections to go).
        self.connection_gone = asyncio.Event()
        self.counters: Counter = Counter()
        #: Sessions of each user reaped/evicted/expired, for connection close lines.
        self.reaped_by_user: Counter = Counter()
        #: ``reaped_by_user`` of each open connection's user when it opened, by channel.
        self.reaped_at_open: dict[str, int] = {}
        self.tasks = TaskSet()
        #: Set by a drain: no new session, turn or slash worker starts here any more.
        self.draining = False
        self.signals = SignalEmitter(SessionHost)
        self.registry = registry or LocalRegistry()
        # One worker makes every change itself: its writes may wait to be batched and its
        # session.list index stays exact. Beside other workers, which read these rows, writes
        # go out at once and session.list reads the store each time.
        shared = self.registry.shared
        self.store = SessionStore(gather=not shared)
        self.index = SessionIndex(self.store, 0.0 if shared else setting("LIST_CACHE_S"))
        self.terminal = ToolHost()
        self.reaper = Reaper(self)
        self.router = SessionRouter(self, self.registry)
        self.cold = ColdStarter(self, self.registry, self.store)
        self.host_channel = HostChannel(
            layer,
            sessions=self.sessions,
            teardown=self.teardown,
            reaper=self.reaper,
            router=self.router,
            tasks=self.tasks,
            counters=self.counters,
            # Ids of recent messages, kept as long as a signed message stays valid (older
            # ones fail the signature's window).
            seen=SeenIds(float(getattr(layer, "expiry", 60)) + CLOCK_SKEW_S),
            drain=worker_drain.request,
        )
        self.heartbeat = Heartbeat(
            self, self.registry, self.store, self.router, self.tasks, self.counters
        )
        self.groups = GroupRefresher(layer, self)
        self.settler = OrphanSettler(self.store, self.host_alive, shared)
        self.samples = Sampler(
            self, setting("LIVE_SAMPLE_INTERVAL_S"), setting("LIVE_SAMPLE_WINDOW_S")
        )

    ### Startup and shutdown ###

    async def start(self) -> None:
        # The default prefix on purpose: channels-redis serves every "specific.<client>!"
        # channel of a process with one BZPOPMIN; another prefix would queue behind it.
        self.channel_name = await self.layer.new_channel()
        await self.layer.group_add(tokens.REVOCATIONS_GROUP, self.channel_name)
        self.store.start()
        self.signals.start()
        self.reaper.start()
        if setting("TERMINAL_SANDBOX") == "none":
            logger.warning("the terminal tool runs commands unsandboxed (TERMINAL_SANDBOX='none')")
        self.host_channel.start(self.channel_name)
        self.groups.start()
        if self.registry.shared:
            await self.heartbeat.start()
        self.settler.start()
        self.samples.start()
        logger.info("session host %s listening on %s", self.worker_name, self.channel_name)

    async def stop(self) -> None:
        """Tear down every live session (slash workers included) and stop background tasks."""
        for session in list(self.sessions.values()):
            await self.teardown(session, CloseReason.CLOSED)
        await self.reaper.stop()
        await self.host_channel.stop()
        await self.heartbeat.stop()
        await self.groups.stop()
        await self.settler.stop()
        await self.samples.stop()
        await self.signals.stop()
        await self.store.stop()
        await self.terminal.stop()
        await close_agent()
        try:
            await self.layer.group_discard(tokens.REVOCATIONS_GROUP, self.channel_name)
        except Exception:
            logger.debug("could not leave %s", tokens.REVOCATIONS_GROUP, exc_info=True)
        await self.registry.close()

    ### Connections ###

    def connection_opened(self, ctx: CallContext) -> None:
        self.connections[ctx.channel_name] = ctx
        self.reaped_at_open[ctx.channel_name] = self.reaped_by_user[ctx.user_id]

    async def connection_closed(self, ctx: CallContext) -> None:
        """Detach every session the connection was attached to (each may then be reaped)."""
        self.connections.pop(ctx.channel_name, None)
        self.connection_gone.set()
        # Every local session is detached before the first await: a failing channel layer
        # or a cancelled disconnect must not leave some attached to a dead channel for good.
        groups: list[str] = []
        remote: list[str] = []
        for session_id in list(ctx.attached):
            session = self.sessions.get(session_id)
            if session is not None:
                if self._unattach(ctx, session):
                    groups.append(session.group)
                    ctx.count("detached_sessions")
            elif self.registry.shared:
                remote.append(session_id)
        ctx.attached.clear()
        for group in groups:
            await self.leave_group(group, ctx.channel_name)
        for session_id in remote:
            await self.router.detach_remote(ctx, session_id)
            ctx.count("detached_sessions")
        opened_at = self.reaped_at_open.pop(ctx.channel_name, 0)
        ctx.counters["reaped"] = self.reaped_by_user[ctx.user_id] - opened_at

    ### Lookup ###

    def get_live(self, ctx: CallContext, session_id: Any) -> LiveSession:
        """The caller's live session, or 4001 (unknown and foreign are indistinguishable)."""
        session = self.sessions.get(session_id) if isinstance(session_id, str) else None
        if session is None or session.user_id != ctx.user_id or session.phase is not Phase.ACTIVE:
            raise SessionNotFound()
        return session

    def new_live(
        self, session_id: str, user_id: int, title: str, created_at: str, last_seq: int = 0
    ) -> LiveSession:
        buffer = ReplayBuffer(setting("REPLAY_BUFFER_EVENTS"), setting("REPLAY_BUFFER_BYTES"))
        # Events before a cold start are gone: resuming from an older seq is a gap.
        buffer.dropped_through = last_seq
        return LiveSession(
            id=session_id,
            user_id=user_id,
            title=title,
            created_at=created_at,
            buffer=buffer,
            seq=last_seq,
            seq_bound=last_seq,
        )

    def reserve_seq(self, session: LiveSession) -> None:
        """Store a new bound on the session's seqs, SEQ_RESERVE ahead (write-behind)."""
        session.seq_bound = session.seq + SEQ_RESERVE
        self.store.update(session.id, last_seq=session.seq_bound)

    ### Lifecycle ###

    def add_live(self, session: LiveSession) -> None:
        self.sessions[session.id] = session
        self.live_by_user[session.user_id] += 1

    def drop_live(self, session: LiveSession) -> None:
        if self.sessions.pop(session.id, None) is not None:
            self.live_by_user[session.user_id] -= 1
            if not self.live_by_user[session.user_id]:
                del self.live_by_user[session.user_id]

    def refuse_if_draining(self) -> None:
        """New work goes to another worker while this one drains (its clients reconnect)."""
        if self.draining:
            raise WorkerDraining()

    async def create(self, ctx: CallContext, title: str) -> LiveSession:
        self.refuse_if_draining()
        now = timezone.now()  # one timestamp: the result and the stored row must agree
        session = self.new_live(new_session_id(), ctx.user_id, title, now.isoformat())
        self.add_live(session)
        self.store.create(session.id, ctx.user_id, title, self.worker_name, self.channel_name, now)
        self.reserve_seq(session)  # merged into the queued INSERT
        keep = setting("MAX_STORED_SESSIONS_PER_USER")
        if keep:
            # Called from the store's thread when rows went: the user's list is read afresh.
            loop = asyncio.get_running_loop()
            self.store.prune(
                ctx.user_id, keep, lambda uid: loop.call_soon_threadsafe(self.index.forget, uid)
            )
        self.index.upsert(
            ctx.user_id,
            session.id,
            title=title,
            status=SessionStatus.LIVE,
            attached=True,
            created_at=session.created_at,
            last_activity=session.created_at,
            messages=0,
            host_channel=self.channel_name,
        )
        await self.registry.register(session.id, ctx.user_id, self.channel_name)
        self.counters["created"] += 1
        self.signals.emit(
            signals.session_created, session_id=session.id, user_id=ctx.user_id, title=title
        )
        await self.attach(ctx, session, persist=False)
        await self.reaper.enforce_cap()
        return session

    async def attach(self, ctx: CallContext, session: LiveSession, *, persist: bool = True) -> None:
        """Attach a connection: bumps the epoch so any reap in flight arrives stale."""
        # The check-and-mutate below has no await: a reap judged on this loop sees either
        # the old epoch with no attachment, or the new epoch - never a half state.
        if session.phase is not Phase.ACTIVE:
            raise SessionNotFound()
        newly = ctx.channel_name not in session.attached
        session.attached.add(ctx.channel_name)
        session.epoch += 1
        session.detached_at = None
        session.touch()
        self.reaper.cancel(session)
        ctx.attached.add(session.id)
        if newly:
            self.signals.emit(
                signals.session_attached,
                session_id=session.id,
                user_id=session.user_id,
                channel_name=ctx.channel_name,
            )
            try:
                await self.layer.group_add(session.group, ctx.channel_name)
            except Exception as exc:
                raise LayerUnavailable() from exc
            if persist:
                self.store.update(session.id, status=session.status, attached=len(session.attached))

    async def detach(self, ctx: CallContext, session: LiveSession) -> bool:
        """Detach a connection; the last one out arms the reap. True if it was attached."""
        if not self._unattach(ctx, session):
            return False
        await self.leave_group(session.group, ctx.channel_name)
        return True

    def _unattach(self, ctx: CallContext, session: LiveSession) -> bool:
        """The bookkeeping of a detach, without an await. True if it was attached."""
        if ctx.channel_name not in session.attached:
            return False
        session.attached.discard(ctx.channel_name)
        ctx.attached.discard(session.id)
        self.signals.emit(
            signals.session_detached,
            session_id=session.id,
            user_id=session.user_id,
            channel_name=ctx.channel_name,
        )
        if not session.attached and session.phase is Phase.ACTIVE:
            session.epoch += 1
            session.detached_at = time.monotonic()
            self.reaper.schedule(session)
            self.store.update(session.id, status=session.status, attached=0)
        return True

    async def leave_group(self, group: str, channel: str) -> None:
        """Best effort: the layer drops a membership left behind after ``group_expiry``."""
        try:
            await self.layer.group_discard(group, channel)
        except Exception as exc:
            self.counters["layer_errors"] += 1
            logger.warning("could not remove %s from group %s: %r", channel, group, exc)

    async def detach_id(self, ctx: CallContext, session_id: str) -> bool:
        """Detach by id (a connection on another worker went away)."""
        session = self.sessions.get(session_id)
        if session is not None and session.user_id != ctx.user_id:
            session = None  # not the caller's: only its own group membership may go
        detached = session is not None and await self.detach(ctx, session)
        if not detached:
            # Attached through an earlier host of the session (it died, or gave the session
            # up): that membership is all that is left of it.
            await self.leave_group(group_name(session_id), ctx.channel_name)
        self.router.forget_proxy(ctx)
        return detached

    async def resume(
        self, ctx: CallContext, session_id: str, last_seq: int | None
    ) -> dict[str, Any]:
        """Attach the caller and replay what it missed; idempotent, cold-starts if needed."""
        session = await self.cold.get_or_cold_start(ctx, session_id)
        async with session.lock:
            await self.attach(ctx, session)
            if last_seq is None:
                # A fresh client: show the running turn's events, the rest is the transcript.
                turn = session.turn
                since = turn.start_seq - 1 if turn is not None and turn.start_seq else session.seq
            else:
                since = min(last_seq, session.seq)
            frames, gap = session.buffer.since(since)
            running = running_turn(session, since)
            # Unanswered questions the client saw before (or that fell out of the buffer)
            # are sent again: the new connection must be able to answer them.
            floor = max(since, session.buffer.dropped_through)
            resent = [q.frame for q in session.pending.values() if q.frame and q.seq <= floor]
            for frame in [*frames, *resent]:
                await self.layer.send(
                    ctx.channel_name, event_message_for(session.id, session.user_id, frame)
                )
        # Written first, so each message has the id session.history pages back from.
        await self.store.flush()
        # The whole response must fit one frame a client accepts: the newest messages that
        # fit in half of it (the rest stay in the database; "omitted" counts them).
        messages, omitted = recent_messages(session.history, setting("MAX_FRAME_BYTES") // 2)
        omitted += session.message_count - len(session.history)  # not kept in memory
        return {
            "session_id": session.id,
            "title": session.title,
            "status": session.status,
            "messages": messages,
            "omitted": omitted,
            "replayed": len(frames),
            # Also when the client saw more than this host issued (a crashed host's events).
            "gap": last_seq is not None and (gap or last_seq > session.seq),
            "last_seq": session.seq,
            **({"running_turn": running} if running is not None else {}),
        }

    async def close(self, ctx: CallContext, session_id: str) -> None:
        session = self.sessions.get(session_id) if isinstance(session_id, str) else None
        if session is None or session.user_id != ctx.user_id:
            stored = None
            if SESSION_ID.match(session_id):
                stored = await self.store.load(session_id, ctx.user_id)
            if stored is None:
                raise SessionNotFound()
            if session is None and stored.status != SessionStatus.CLOSED:
                # Open in the database but live nowhere: its host died.
                await self.cold.close_stored(session_id, stored.user_id, stored.last_seq)
            # Closing a finished (reaped, closed) session of one's own is a no-op.
            return
        await self.teardown(session, CloseReason.CLOSED)

    async def teardown(self, session: LiveSession, reason: str) -> None:
        """The one finalize path: turn, questions, slash worker, status, ``session.closed``."""
        if session.phase is not Phase.ACTIVE:
            await session.closed.wait()
            return
        session.phase = Phase.CLOSING
        session.close_reason = reason
        # In a task of its own, shielded: a caller cancelled half way (a disconnect, a
        # shutdown) must not leave the session CLOSING for good, its row never finalized.
        await asyncio.shield(self.tasks.spawn(self._teardown(session, reason)))

    async def _teardown(self, session: LiveSession, reason: str) -> None:
        try:
            self.reaper.cancel(session)
            await self._end_work(session)
            if session.attached and reason != DRAINED:
                # Only attached connections (local or on other workers) are in the group; a
                # detached session's replay buffer goes with it, so nobody could see the event.
                await self.publish(session, "session.closed", {"reason": reason})
            for channel in list(session.attached):
                ctx = self.connections.get(channel)
                if reason == DRAINED and ctx is not None and ctx.transport == "remote":
                    # Drained, not closed: a connection of another worker stays in the group
                    # and sees the events of whichever worker revives the session.
                    continue
                await self.leave_group(session.group, channel)
        except Exception:
            logger.exception("tearing down session %s failed; finalizing it anyway", session.id)
        finally:
            try:
                self._retire(session, reason)
                await self.release_claim(session.id)
            finally:
                # Whatever failed above: a resume waiting on this session starts afresh.
                session.phase = Phase.CLOSED
                session.closed.set()

    async def release_claim(self, session_id: str) -> None:
        """Drop this host's registry entry of the session; a failure is logged (it expires)."""
        try:
            await self.registry.release(session_id, self.channel_name)
        except Exception as exc:
            logger.warning("could not release %s in the registry: %r", session_id, exc)

    async def _end_work(self, session: LiveSession) -> None:
        """Cancel the running turn and the open questions, end the slash worker, and delete
        the terminal's scratch directory (the turn, and so its command, is over by then)."""
        turn = session.turn
        if turn is not None and turn.task is not None:
            turn.task.cancel()
            await asyncio.gather(turn.task, return_exceptions=True)
        for question in list(session.pending.values()):
            question.future.cancel()
        if session.slash is not None:
            await session.slash.close()
        await self.terminal.end_session(session.id)

    def _retire(self, session: LiveSession, reason: str) -> None:
        """Forget a torn-down session: its connections, its live entry, then its row."""
        for channel in session.attached:
            ctx = self.connections.get(channel)
            if ctx is not None:
                ctx.attached.discard(session.id)
                self.router.forget_proxy(ctx)
        session.attached.clear()
        self.drop_live(session)
        if reason == DRAINED:
            self.detach_row(session)
            return
        self.finalize_row(
            session.id,
            session.user_id,
            reason,
            session.seq,
            title=session.title,
            messages=session.message_count,
        )

    def finalize_row(
        self,
        session_id: str,
        user_id: int,
        reason: str,
        last_seq: int,
        *,
        title: str | None = None,
        messages: int | None = None,
        after: str = "",
    ) -> None:
        """
        The one way a session ends in the row, the ``session.list`` index, the counters and
        the log, whether it was live here (teardown) or live nowhere (``ColdStarter``).
        """
        self.store.finalize(session_id, reason, last_seq)
        known = {"title": title, "messages": messages}
        self.index.upsert(
            user_id,
            session_id,
            status=SessionStatus.CLOSED,
            attached=False,
            last_activity=timezone.now().isoformat(),
            **{name: value for name, value in known.items() if value is not None},
        )
        self.counters[reason] += 1
        self.signals.emit(
            signals.session_closed, session_id=session_id, user_id=user_id, reason=reason
        )
        if reason != CloseReason.CLOSED:
            self.reaped_by_user[user_id] += 1
        # Evictions come one per new session once the cap is reached: the reaper reports
        # them in aggregate. Reaps and expiries are the leak-relevant events: one line each.
        level = logging.DEBUG if reason == CloseReason.EVICTED else logging.INFO
        suffix = f" {after}" if after else ""
        logger.log(level, "session %s %s%s (user %s)", session_id, reason, suffix, user_id)

    def detach_row(self, session: LiveSession) -> None:
        """
        A drained session's row and index entry: detached, resumable, hosted nowhere, its
        ``last_seq`` exactly the last seq issued (none follows here), so the worker that
        revives it continues from there and a client that saw every event sees no gap.
        """
        self.store.update(
            session.id,
            status=SessionStatus.DETACHED,
            attached=0,
            host_channel="",
            slash_pid=None,
            last_seq=session.seq,
        )
        self.index.upsert(
            session.user_id,
            session.id,
            title=session.title,
            status=SessionStatus.DETACHED,
            attached=False,
            messages=session.message_count,
            host_channel="",
        )
        self.counters[DRAINED] += 1
        logger.info("session %s drained (user %s)", session.id, session.user_id)

    ### Taken over elsewhere ###

    def give_up(self, session: LiveSession) -> None:
        """
        Drop this host's copy of a session another host took over, at once; its turn,
        questions, slash worker and scratch directory end in the background (the heartbeat
        must not wait on a slash worker's exit). Nothing goes to the group, the row or the
        registry entry: they are the new host's. Connections attached through this host stay
        in the group (they see the new host's events; their next call, or their close, goes
        there).
        """
        if session.phase is not Phase.ACTIVE:
            return
        # Closed first: nothing this copy still does (the cancelled turn) publishes.
        session.phase = Phase.CLOSED
        session.given_up = True
        self.reaper.cancel(session)
        self.drop_live(session)
        for channel in list(session.attached):
            ctx = self.connections.get(channel)
            if ctx is not None and ctx.transport == "remote":
                ctx.attached.discard(session.id)
                self.router.forget_proxy(ctx)
        session.attached.clear()
        self.counters["given_up"] += 1
        logger.warning(
            "session %s is hosted elsewhere now (this host stalled past HOST_DEAD_AFTER_S);"
            " dropped this host's copy",
            session.id,
        )
        self.tasks.spawn(self._end_given_up(session))

    async def _end_given_up(self, session: LiveSession) -> None:
        try:
            await self._end_work(session)
        finally:
            session.closed.set()

    ### Other hosts ###

    async def host_alive(self, channel: str) -> bool:
        """Whether the host on ``channel`` is running (with InMemory, only this one can be)."""
        if channel == self.channel_name:
            return True
        return self.registry.shared and await self.registry.alive(channel)

    async def refresh_groups(self) -> int:
        """Join again every group this host's messages travel by (see ``GroupRefresher``)."""
        return await self.groups.refresh()

    ### Turns and questions ###

    async def submit(self, ctx: CallContext, session_id: str, text: str) -> str:
        self.refuse_if_draining()
        session = await self.cold.get_or_cold_start(ctx, session_id)
        if session.turn is not None:
            raise SessionBusy()
        coalesce_s = setting("DELTA_COALESCE_MS") / 1000.0
        user = TurnUser(ctx.caller.user_id, ctx.caller.username)
        turn = TurnRunner(self, session, get_agent(), text, coalesce_s, user)
        # Claimed before the first await (attach may wait on the layer): a prompt submitted
        # meanwhile is busy, and there is never a second turn that teardown would not stop.
        session.turn = turn
        try:
            await self.attach(ctx, session)
            if session.phase is not Phase.ACTIVE:
                raise SessionNotFound()  # torn down while the layer answered
        except BaseException:
            if session.turn is turn:
                session.turn = None
                self.reaper.rearm(session)
            raise
        self.store.update(session.id, status=SessionStatus.RUNNING)
        turn.start()
        self.signals.emit(
            signals.turn_started,
            session_id=session.id,
            user_id=session.user_id,
            turn_id=turn.turn_id,
            text=text,
        )
        return turn.turn_id

    def turn_finished(self, session: LiveSession, turn: TurnRunner) -> None:
        if session.turn is turn:
            session.turn = None
        self.signals.emit(
            signals.turn_finished,
            session_id=session.id,
            user_id=session.user_id,
            turn_id=turn.turn_id,
            text=turn.text_so_far,
            interrupted=turn.interrupted,
            tool_calls=list(turn.tool_calls),
        )
        session.touch()
        if session.phase is Phase.ACTIVE:
            # No last_seq: the row keeps the bound _publish reserved ahead of the seqs.
            self.store.update(session.id, status=session.status, attached=len(session.attached))
            self.reaper.rearm(session)

    def question_settled(self, session: LiveSession) -> None:
        session.touch()
        self.reaper.rearm(session)

    def answer_unattended(self, session: LiveSession, question: PendingQuestion) -> None:
        """Answer a question nobody was attached to answer: deny, or an empty clarification."""
        answer = UNATTENDED_ANSWERS[question.kind]
        logger.info(
            "session %s: %s request %s unanswered while detached; answered %r",
            session.id,
            question.kind,
            question.request_id,
            answer,
        )
        question.future.set_result(answer)

    async def interrupt(self, ctx: CallContext, session_id: str) -> bool:
        session = self.get_live(ctx, session_id)
        return session.turn.interrupt() if session.turn is not None else False

    async def respond(
        self, ctx: CallContext, session_id: str, kind: str, request_id: str, answer: Any
    ) -> None:
        session = self.get_live(ctx, session_id)
        question = session.pending.get(request_id)
        if question is None or question.future.done():
            raise InvalidParams("request_id", "is not a pending request of this session")
        if question.kind != kind:
            raise InvalidParams("request_id", f"is a {question.kind} request, not {kind}")
        session.touch()
        question.future.set_result(answer)

    ### Slash commands ###

    async def slash(self, ctx: CallContext, session_id: str, command: str) -> str:
        self.refuse_if_draining()
        session = await self.cold.get_or_cold_start(ctx, session_id)
        session.touch()
        if session.slash is None:
            session.slash = SlashClient(session.id)
        context: dict[str, Any] = {
            "session_id": session.id,
            "user": {"id": session.user_id, "username": ctx.caller.username},
            "title": session.title,
            "status": session.status,
            "skin": session.skin,
            "version": _version(),
        }
        if installed().reads_transcript(command_name(command)):
            # Encoded on the event loop: only for the commands that read it.
            context["messages"] = session.history[-SLASH_TRANSCRIPT_MESSAGES:]
        pid_before = session.slash.pid
        session.slash_calls += 1
        try:
            result = await session.slash.execute(command, context)
        except SlashError as exc:
            if session.phase is not Phase.ACTIVE:
                # Closed while the command ran: the worker went with it.
                raise SessionNotFound("Session closed while the slash command ran") from exc
            raise InternalError(f"slash command failed: {exc}") from exc
        finally:
            session.slash_calls -= 1
            # A reap that came due meanwhile was put off: arm what is left of the grace.
            self.reaper.rearm(session)
        effects = result.get("effects") or {}
        updates: dict[str, Any] = {}
        if isinstance(effects.get("title"), str):
            session.title = effects["title"][:200]
            updates["title"] = session.title
        if effects.get("clear"):
            session.clear_history()
            self.store.clear_messages(session.id)
        if isinstance(effects.get("skin"), str):
            session.skin = effects["skin"]
        if session.slash.pid != pid_before:
            updates["slash_pid"] = session.slash.pid
        if updates:
            self.store.update(session.id, **updates)
        return result.get("output", "")

    ### Events ###

    async def publish(
        self,
        session: LiveSession,
        event_type: str,
        payload: dict[str, Any],
        *,
        numbered: Callable[[int], None] | None = None,
    ) -> Published:
        """
        Give the event the next ``seq``, buffer it for replay and send it to the group.
        ``numbered`` gets the seq under the session lock before the frame goes out, so a
        resume sees what it records with the event, and a send cancelled half way (the
        frame may have reached clients) still leaves it recorded.
        """
        async with session.lock:
            return await self._publish(session, event_type, payload, numbered)

    async def _publish(
        self,
        session: LiveSession,
        event_type: str,
        payload: dict[str, Any],
        numbered: Callable[[int], None] | None = None,
    ) -> Published:
        if session.phase is Phase.CLOSED:
            # Given up to another host (or done): its seqs and group are not ours to use.
            return Published(session.seq, "")
        session.seq += 1
        if session.seq > session.seq_bound - SEQ_RESERVE // 2:
            # Renewed while half the reservation is left: the write lands long before the
            # events reach the bound it replaces.
            self.reserve_seq(session)
        frame = encode(event_message(event_type, payload, session.id, session.seq))
        # Kept in the replay buffer: if the send fails, clients catch up with
        # session.resume + last_seq.
        session.buffer.append(session.seq, frame)
        if numbered is not None:
            numbered(session.seq)
        await self.send_frame(session.id, session.user_id, event_type, frame)
        return Published(session.seq, frame)

    async def send_frame(self, session_id: str, user_id: int, event_type: str, frame: str) -> None:
        """Send an encoded event of ``user_id``'s session to its group; a failure is counted
        and logged."""
        try:
            message = event_message_for(session_id, user_id, frame)
            await self.layer.group_send(group_name(session_id), message)
        except Exception as exc:
            self.counters["publish_failures"] += 1
            logger.warning("could not publish %s of %s: %r", event_type, session_id, exc)

    ### Introspection ###

    def snapshot(self) -> dict[str, Any]:
        """Real live state for the admin's live page and health checks."""
        counts = SessionCounts.of(self.sessions.values())
        return {
            "worker": self.worker_name,
            "connections": len(self.connections),
            "sessions": len(self.sessions),
            "by_status": counts.by_status,
            "running_turns": counts.running_turns,
            "pending_questions": counts.pending_questions,
            "pending_reaps": [
                {"session_id": s.id, "due_at": self.reaper.due_at(s)}
                for s in self.sessions.values()
                if s.reap_timer is not None
            ],
            "slash_workers": counts.slash_workers,
            "counters": dict(self.counters),
        }


def _version() -> str:
    from .. import __version__

    return __version__


### The worker's host ###

_host: SessionHost | None = None
_host_loop: asyncio.AbstractEventLoop | None = None
_host_lock: asyncio.Lock | None = None


async def get_host() -> SessionHost:
    """This worker's session host, started on first use inside the running event loop."""
    global _host, _host_loop, _host_lock
    loop = asyncio.get_running_loop()
    if _host is not None and _host_loop is loop:
        return _host
    if _host_lock is None or _host_loop is not loop:
        _host_lock = asyncio.Lock()
        _host_loop = loop
        _host = None
    async with _host_lock:
        if _host is None:
            registry = build_registry(registry_redis_url())
            host = SessionHost(get_channel_layer(), setting("WORKER_NAME"), registry)
            # Started in a context of its own: the host's background tasks inherit the
            # context they are created in, and the first caller may be an HTTP request
            # (/healthz) whose thread executor is shut down when the request ends.
            await loop.create_task(host.start(), context=contextvars.Context())
            _host = host
    return _host


async def reset_host() -> None:
    """Stop and forget the host (tests, shutdown)."""
    global _host, _host_loop, _host_lock
    host = _host
    _host = None
    _host_loop = None
    _host_lock = None
    if host is not None:
        await host.stop()


def current_host() -> SessionHost | None:
    """The host if one is running (sync callers like the admin read its snapshot)."""
    return _host
