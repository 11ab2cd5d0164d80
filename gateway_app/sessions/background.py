"""
What a session host runs besides its sessions' requests: it serves its host channel (reaps,
operator teardowns, forwarded calls and their replies, revocations), beats its heartbeat,
which also renews its sessions' registry keys and gives up those another host took over
after a stall, renews channel-layer group memberships, and settles the rows of workers that
stopped without closing their sessions.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..auth import logins, tokens
from ..conf import setting
from .cluster.router import CALL_MESSAGE, REPLY_MESSAGE
from .reaper import REAP_MESSAGE
from .state import TEARDOWN_MESSAGE, TEARDOWN_REASONS, LiveSession, Phase

logger = logging.getLogger(__name__)


class HostBackground:
    """The background work of ``SessionHost`` (a mixin: it shares the host's state)."""

    async def _settle_orphans_forever(self) -> None:
        """
        At start; then, beside other workers (any of which may die while this one runs),
        every ``SETTLE_INTERVAL_S`` (0: at start only).
        """
        await self._settle_orphans()
        while self.registry.shared and (interval := float(setting("SETTLE_INTERVAL_S"))) > 0:
            await asyncio.sleep(interval)
            await self._settle_orphans()

    async def _settle_orphans(self) -> None:
        """
        Rows that a stopped worker left saying live, running or attached (it was killed, or
        its server stopped without finalizing them) are marked detached: that is what they
        are, resumable from their transcripts. ``session.list`` already shows them so; the
        admin reads the rows. Never fails the start: the rows are only a display.
        """
        try:
            claimed = await self.store.claimed_hosts()
            stopped = [channel for channel in claimed if not await self.host_alive(channel)]
        except Exception as exc:
            logger.warning("could not check for sessions left by stopped workers: %r", exc)
            return
        if stopped:
            self.store.detach_hosted_by(stopped)
            logger.info(
                "marking the sessions of %d stopped host(s) detached: %s",
                len(stopped),
                ", ".join(stopped),
            )

    async def _listen(self) -> None:
        """Serve the host channel: reaps, teardowns, forwarded calls and their replies,
        token revocations and ended logins."""
        backoff = 0.1
        while True:
            try:
                message = await self.layer.receive(self.channel_name)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The layer is down (Redis restarting): keep trying, recover by ourselves.
                self.counters["layer_errors"] += 1
                logger.warning("host channel receive failed (%r); retrying in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
                continue
            backoff = 0.1
            kind = message.get("type")
            if not self._first_delivery(kind, message):
                continue
            try:
                # Reaps, teardowns and calls run concurrently: a teardown may wait seconds on
                # a slash worker, and replies, calls and revocations must not queue behind it.
                # A reap is still judged atomically, when its task runs (Reaper.handle).
                if kind == REAP_MESSAGE:
                    self._spawn(self.reaper.handle(message))
                elif kind == CALL_MESSAGE:
                    self._spawn(self.router.handle_call(message))
                elif kind == REPLY_MESSAGE:
                    self.router.handle_reply(message)
                elif kind == TEARDOWN_MESSAGE:
                    self._spawn(self._handle_teardown(message))
                elif kind == tokens.REVOKED_MESSAGE:
                    await tokens.revoked_elsewhere(int(message["token_id"]))
                elif kind == logins.ENDED_MESSAGE:
                    await logins.ended_elsewhere(str(message["session"]))
                elif kind == logins.CHANGED_MESSAGE:
                    # In a task: the re-check reads the database.
                    self._spawn(logins.changed_elsewhere(int(message["user_id"])))
                else:
                    logger.warning("host channel got unknown message %r", kind)
            except Exception:
                logger.exception("host failed handling %r", kind)

    def _first_delivery(self, kind: Any, message: dict[str, Any]) -> bool:
        """
        False for a message this host already served: a valid signed message captured from
        Redis and pushed again must not run twice (a second teardown, an answer replayed).
        """
        message_id = message.get("call_id") or message.get("id")
        if not message_id or self._seen.first(f"{kind}:{message_id}"):
            return True
        self.counters["replays_dropped"] += 1
        logger.warning("dropped a repeated %r (id %s) on the host channel", kind, message_id)
        return False

    def _spawn(self, coro: Any) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._spawned_done)
        return task

    def _spawned_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("host task %s failed", task.get_name(), exc_info=task.exception())

    async def _heartbeat_forever(self) -> None:
        while True:
            await asyncio.sleep(float(setting("HEARTBEAT_S")))
            try:
                await self._beat()
                await self.router.sweep_remote()
            except Exception as exc:
                self.counters["heartbeat_failures"] += 1
                logger.warning("heartbeat failed: %r", exc)

    async def _beat(self) -> None:
        """
        Refresh this host's liveness and its sessions' registry entries in one round trip.
        A session another host holds now (this one stalled past HOST_DEAD_AFTER_S and it
        was taken over) is given up; one whose entry went while this host counted as dead
        is checked against the database before it is taken back.
        """
        hosted = {
            s.id: s
            for s in self.sessions.values()
            if s.phase is Phase.ACTIVE and s.id not in self._rechecking
        }
        try:
            beat = await self.registry.heartbeat(
                self.channel_name,
                float(setting("HOST_DEAD_AFTER_S")),
                {session_id: session.user_id for session_id, session in hosted.items()},
            )
        except Exception:
            # Whatever Redis kept through the outage is suspect: re-register once it is back.
            self._registry_data_id = ""
            raise
        for session_id in beat.lost:
            self._give_up(hosted[session_id])
        for session_id in beat.restored:
            if self.sessions.get(session_id) is not hosted[session_id]:
                # Torn down while the beat was on its way: its release came first.
                await self.registry.release(session_id, self.channel_name)
        if beat.unsure:
            # In the background: the heartbeat must not wait on the database.
            self._rechecking.update(beat.unsure)
            self._spawn(self._recheck({sid: hosted[sid] for sid in beat.unsure}))
        if beat.data_id != self._registry_data_id:
            # First beat, or Redis restarted (without persistence its data is gone): join
            # again the group memberships events travel by.
            await self.refresh_groups()
            self._registry_data_id = beat.data_id

    async def _recheck(self, sessions: dict[str, LiveSession]) -> None:
        """
        Take back the registry entries of sessions that went while this host counted as
        dead (a stall, or Redis lost its data) unless another host took one over meanwhile:
        its row then names that host, or is closed (taken over and closed since, which left
        no entry to tell). Those are given up.
        """
        try:
            ours = await self.store.hosted_by(list(sessions), self.channel_name)
            kept = 0
            for session_id, session in sessions.items():
                if self.sessions.get(session_id) is not session:
                    continue
                if session_id in ours and await self.registry.claim(
                    session_id, "", self.channel_name, session.user_id
                ):
                    kept += 1
                else:
                    self._give_up(session)
            logger.warning(
                "re-registered %d of %d sessions whose registry entries lapsed while this"
                " host counted as dead",
                kept,
                len(sessions),
            )
        except Exception as exc:
            # Set again by the next beat, as entries that expired while this host lived.
            logger.warning("could not re-check sessions whose entries lapsed: %r", exc)
        finally:
            self._rechecking.difference_update(sessions)

    def _give_up(self, session: LiveSession) -> None:
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
        session.close_reason = "moved"
        self.reaper.cancel(session)
        self._drop_live(session)
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
        self._spawn(self._end_given_up(session))

    async def _end_given_up(self, session: LiveSession) -> None:
        try:
            await self._end_work(session)
        finally:
            session.closed.set()

    async def _refresh_groups_forever(self) -> None:
        while True:
            await asyncio.sleep(max(float(setting("GROUP_REFRESH_S")), 0.05))
            try:
                await self.refresh_groups()
            except Exception as exc:
                logger.warning("refreshing group memberships failed: %r", exc)

    async def refresh_groups(self) -> int:
        """
        Join again every group this host's messages travel by: its revocations group and
        each session's group for every attached connection.
        Channel layers drop a membership ``group_expiry`` (a day by default) after it was
        made, however busy the connection: without this, a socket open for longer would
        stop getting its session's events. Returns how many memberships were renewed.
        """
        await self.layer.group_add(tokens.REVOCATIONS_GROUP, self.channel_name)
        renewed = 1
        for session in list(self.sessions.values()):
            for channel in list(session.attached):
                await self.layer.group_add(session.group, channel)
                renewed += 1
        return renewed

    async def _handle_teardown(self, message: dict[str, Any]) -> None:
        session = self.sessions.get(message.get("session_id", ""))
        reason = message.get("reason")
        if session is not None and reason in TEARDOWN_REASONS:
            await self.teardown(session, reason)

    async def host_alive(self, channel: str) -> bool:
        """Whether the host on ``channel`` is running (with InMemory, only this one can be)."""
        if channel == self.channel_name:
            return True
        return self.registry.shared and await self.registry.alive(channel)
