"""
A host's heartbeat beside other workers: it keeps the host alive in the registry and renews
its sessions' entries in one round trip. A session another host took over while this one
stalled is given up; one whose entry lapsed meanwhile is checked against its row before it
is taken back; after Redis lost its data the host joins its groups again.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ...conf import setting
from ..state import LiveSession, Phase
from ..tasks import Periodic, TaskSet

if TYPE_CHECKING:
    from ..store import SessionStore
    from .registry import LocalRegistry
    from .router import SessionRouter

logger = logging.getLogger(__name__)


class BeatingHost(Protocol):
    """What the heartbeat needs of its host: its sessions, and the two changes it asks for."""

    channel_name: str
    worker_name: str
    sessions: dict[str, LiveSession]

    def give_up(self, session: LiveSession) -> None: ...

    async def refresh_groups(self) -> int: ...


@dataclass(eq=False)
class Heartbeat:
    """Beats every ``HEARTBEAT_S``; ``beat()`` is one beat."""

    host: BeatingHost
    registry: LocalRegistry
    store: SessionStore
    router: SessionRouter
    tasks: TaskSet
    counters: Counter
    periodic: Periodic = field(init=False)
    #: Redis run id seen by the last beat (None before the first; "" after a failure).
    data_id: str | None = field(default=None, init=False)
    #: Sessions whose registry keys went while this host counted as dead, being checked.
    rechecking: set[str] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        self.periodic = Periodic(
            self._beat_and_sweep,
            lambda: setting("HEARTBEAT_S"),
            failure="heartbeat failed",
            log=logger,
            on_failure=self._count_failure,
        )

    async def start(self) -> None:
        """The first beat, at once (the host is alive from now on), then the loop."""
        await self.beat()
        self.periodic.start()

    async def stop(self) -> None:
        await self.periodic.stop()

    def _count_failure(self, exc: Exception) -> None:
        self.counters["heartbeat_failures"] += 1

    async def _beat_and_sweep(self) -> None:
        await self.beat()
        await self.router.sweep_remote()

    async def beat(self) -> None:
        """Refresh this host's liveness and its sessions' registry entries; act on what changed."""
        host = self.host
        hosted = {
            s.id: s
            for s in host.sessions.values()
            if s.phase is Phase.ACTIVE and s.id not in self.rechecking
        }
        try:
            beat = await self.registry.heartbeat(
                host.channel_name,
                setting("HOST_DEAD_AFTER_S"),
                {session_id: session.user_id for session_id, session in hosted.items()},
                name=host.worker_name,
            )
        except Exception:
            # Whatever Redis kept through the outage is suspect: re-register once it is back.
            self.data_id = ""
            raise
        for session_id in beat.lost:
            host.give_up(hosted[session_id])
        for session_id in beat.restored:
            if host.sessions.get(session_id) is not hosted[session_id]:
                # Torn down while the beat was on its way: its release came first.
                await self.registry.release(session_id, host.channel_name)
        if beat.unsure:
            # In the background: the heartbeat must not wait on the database.
            self.rechecking.update(beat.unsure)
            self.tasks.spawn(self.recheck({sid: hosted[sid] for sid in beat.unsure}))
        if beat.data_id != self.data_id:
            # First beat, or Redis restarted (without persistence its data is gone): join
            # again the group memberships events travel by.
            await host.refresh_groups()
            self.data_id = beat.data_id

    async def recheck(self, sessions: dict[str, LiveSession]) -> None:
        """
        Take back the entries of sessions that lapsed while this host counted as dead, unless
        another host took one over meanwhile: its row then names that host, or is closed
        (taken over and closed since, which left no entry to tell). Those are given up.
        """
        host = self.host
        try:
            ours = await self.store.hosted_by(list(sessions), host.channel_name)
            kept = 0
            for session_id, session in sessions.items():
                if host.sessions.get(session_id) is not session:
                    continue
                if session_id in ours and await self.registry.claim(
                    session_id, "", host.channel_name, session.user_id
                ):
                    kept += 1
                else:
                    host.give_up(session)
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
            self.rechecking.difference_update(sessions)
