"""An in-memory registry shared by several SessionHosts in one process: the RedisRegistry's
behaviour (claims, beats, expiry with the host's liveness) without Redis; hosts on it, and
connections registered as a consumer would."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from channels.db import database_sync_to_async
from channels.layers import InMemoryChannelLayer

from gateway_app.rpc.context import CallContext, Caller
from gateway_app.sessions.cluster.registry import Beat, HostEntry, LocalRegistry, _stored_host
from gateway_app.sessions.host import SessionHost


class FakeRegistry(LocalRegistry):
    """Implements the registry interface with ``shared=True``; one instance per cluster."""

    shared = True

    def __init__(self) -> None:
        self.entries: dict[str, HostEntry] = {}
        self.live_hosts: set[str] = set()
        self.data_id = "fake-1"
        #: Worker name of each live host, as its last beat gave it.
        self.names: dict[str, str] = {}
        #: Entries ``lookup`` answers once instead of the real one (a lookup that raced a claim).
        self.stale: dict[str, HostEntry | None] = {}

    ### Test controls ###

    def stall(self, host: str) -> None:
        """The host stops beating past HOST_DEAD_AFTER_S: its liveness and its entries expire."""
        self.live_hosts.discard(host)
        for session_id in [s for s, e in self.entries.items() if e.host == host]:
            del self.entries[session_id]

    def answer_once(self, session_id: str, entry: HostEntry | None) -> None:
        self.stale[session_id] = entry

    ### LocalRegistry interface ###

    async def register(self, session_id: str, user_id: int, host: str) -> None:
        self.entries[session_id] = HostEntry(host, user_id)

    async def release(self, session_id: str, host: str) -> None:
        entry = self.entries.get(session_id)
        if entry is not None and entry.host == host:
            del self.entries[session_id]

    async def lookup(self, session_id: str) -> HostEntry | None:
        if session_id in self.stale:
            return self.stale.pop(session_id)
        entry = self.entries.get(session_id)
        if entry is not None:
            return entry
        # As RedisRegistry: with the key gone, the database row knows the host.
        return await database_sync_to_async(_stored_host)(session_id)

    async def claim(self, session_id: str, dead_host: str, host: str, user_id: int) -> bool:
        current = self.entries.get(session_id)
        if current is None or current.host in (dead_host, host):
            self.entries[session_id] = HostEntry(host, user_id)
            return True
        return False

    async def heartbeat(
        self, host: str, ttl_s: float, sessions: dict[str, int], name: str = ""
    ) -> Beat:
        alive = host in self.live_hosts
        self.live_hosts.add(host)
        self.names[host] = name
        lost, restored, unsure = [], [], []
        for session_id, user_id in sessions.items():
            current = self.entries.get(session_id)
            if current is not None and current.host == host:
                continue
            if current is None and alive:
                self.entries[session_id] = HostEntry(host, user_id)
                restored.append(session_id)
            elif current is None:
                unsure.append(session_id)
            else:
                lost.append(session_id)
        return Beat(self.data_id, tuple(lost), tuple(restored), tuple(unsure))

    async def withdraw(self, host: str) -> None:
        self.live_hosts.discard(host)

    async def alive(self, host: str) -> bool:
        return host in self.live_hosts

    async def named(self, name: str) -> list[str]:
        return sorted(h for h in self.live_hosts if self.names.get(h) == name)

    async def hosts(self) -> list[str]:
        return sorted(self.live_hosts)


@contextlib.asynccontextmanager
async def running_hosts(registry: LocalRegistry) -> AsyncIterator[list[SessionHost]]:
    """Hosts A and B on one in-memory layer and ``registry``, started, stopped after."""
    layer = InMemoryChannelLayer()
    started = [SessionHost(layer, name, registry) for name in ("A", "B")]
    for host in started:
        await host.start()
    try:
        yield started
    finally:
        for host in started:
            await host.stop()


async def connect(host: SessionHost, user, transport: str = "websocket") -> CallContext:
    """A connection on ``host``'s worker, as its consumer would register it."""
    ctx = CallContext(Caller(user.pk, user.username), await host.layer.new_channel(), transport)
    host.connection_opened(ctx)
    return ctx
