"""
Cross-worker routing: a request for a session hosted on another worker is forwarded to that
host's channel and the reply relayed, so a client can use any session from any worker.

Calls and replies are channel-layer messages (``host.call`` / ``host.reply``) between host
channels. The host runs a forwarded call with a proxy context for the remote connection (its
channel name and user), so attach adds *that* channel to the session group and events flow
straight to the client's consumer; the proxy lives while it is attached to something. A
session that no live host holds (reaped, or its host died) is cold-started by the worker that
gets the call, once the host has claimed it atomically; a worker that loses that race gets
``SessionMoved`` and sends the call to the winner instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ...conf import setting
from ...metrics import families
from ...rpc.context import CallContext, Caller
from ...rpc.errors import InternalError, RpcError, SessionNotFound
from ..state import group_name
from . import messages
from .messages import Operation

if TYPE_CHECKING:
    from ..host import SessionHost
    from .registry import LocalRegistry

logger = logging.getLogger(__name__)

#: The host coroutine ``(ctx, session_id, **args)`` each operation runs, looked up on the
#: host it runs on (a unit test holds each against SessionHost's signatures).
OPERATIONS: dict[Operation, Callable[[SessionHost], Callable[..., Awaitable[Any]]]] = {
    Operation.RESUME: lambda host: host.resume,
    Operation.SUBMIT: lambda host: host.submit,
    Operation.SLASH: lambda host: host.slash,
    Operation.CLOSE: lambda host: host.close,
    Operation.INTERRUPT: lambda host: host.interrupt,
    Operation.RESPOND: lambda host: host.respond,
    Operation.DETACH_ID: lambda host: host.detach_id,
}
#: Operations after which the calling connection is attached to the session (``slash``
#: cold-starts a session but attaches nobody, as on the host itself).
ATTACHING = frozenset({Operation.RESUME, Operation.SUBMIT})
#: How often a call follows a session that moved before giving up (-32603, retry).
MAX_MOVES = 3


class RemoteError(RpcError):
    """An RpcError raised on the host, re-raised on the worker that forwarded the call."""

    def __init__(self, code: int, message: str, data: dict | None = None):
        self.code = code
        super().__init__(message, data)


class HostUnavailable(InternalError):
    default_message = "The session's host worker did not answer; retry shortly"


class SessionMoved(InternalError):
    """Another host claimed the session first: the call belongs there (routing retries)."""

    default_message = "The session moved to another worker; retry"


class SessionRouter:
    """Runs session operations locally or on the session's host worker."""

    def __init__(self, host: SessionHost, registry: LocalRegistry):
        self.host = host
        self.registry = registry
        self._pending: dict[str, asyncio.Future] = {}
        #: Proxy contexts for connections on other workers, by their channel name.
        self.remote_connections: dict[str, CallContext] = {}
        #: Forwarded calls running per proxy: a proxy is forgotten only once none is.
        self._running: Counter[str] = Counter()
        #: Sessions a remote connection left while calls of its were still running here (a
        #: slow resume may attach it after the detach): detached again once those end.
        self._left: dict[str, set[str]] = {}

    async def call(self, ctx: CallContext, op: Operation, session_id: str, **args: Any) -> Any:
        """Run ``op`` for the caller wherever the session lives."""
        op = Operation(op)
        host = self.host
        for _ in range(MAX_MOVES):
            if host.sessions.get(session_id) is None and self.registry.shared:
                entry = await self.registry.lookup(session_id)
                # Another user's session is run here like an unknown id (the host's store
                # lookup, filtered by user, finds nothing): the same 4001 in the same time.
                if (
                    entry is not None
                    and entry.host != host.channel_name
                    and entry.user_id == ctx.user_id
                ):
                    if await self.registry.alive(entry.host):
                        try:
                            return await self._forward(entry.host, ctx, op, session_id, args)
                        except HostUnavailable:
                            if await self.registry.alive(entry.host):
                                raise
                        except SessionMoved:
                            continue
                    # Its host is dead: a cold start here claims it (see SessionHost).
            try:
                return await OPERATIONS[op](host)(ctx, session_id, **args)
            except SessionMoved:
                continue  # another worker claimed it first: ask that one
        raise HostUnavailable("The session kept moving between workers; retry shortly")

    async def snapshots(self) -> list[dict[str, Any]]:
        """The live state of every other worker's host (for the admin's live page)."""
        return await self._ask_others(messages.SNAPSHOT)

    async def samples(self) -> list[dict[str, Any]]:
        """The ring of samples of every other worker's host (the live page's charts)."""
        return await self._ask_others(messages.SAMPLES)

    async def _ask_others(self, op: str) -> list[dict[str, Any]]:
        """A host-level call to every other live host; those that fail or time out are left
        out (the page shows the workers that answered)."""
        others = [h for h in await self.registry.hosts() if h != self.host.channel_name]
        results = await asyncio.gather(*(self._ask(h, op) for h in others), return_exceptions=True)
        return [r for r in results if isinstance(r, dict)]

    async def _ask(self, target: str, op: str) -> Any:
        """A host-level call that concerns no session or connection."""
        message = messages.host_query(self.host.channel_name, op)
        call_id = message["call_id"]
        future = asyncio.get_running_loop().create_future()
        self._pending[call_id] = future
        try:
            await self.host.layer.send(target, message)
            async with asyncio.timeout(2.0):
                reply = await future
        finally:
            self._pending.pop(call_id, None)
        return reply.get("result")

    async def detach_remote(self, ctx: CallContext, session_id: str) -> None:
        """Tell the host of a session attached from this worker that the connection left."""
        try:
            entry = await self.registry.lookup(session_id)
            if (
                entry is not None
                and entry.host != self.host.channel_name
                and await self.registry.alive(entry.host)
            ):
                await self._forward(entry.host, ctx, Operation.DETACH_ID, session_id, {})
            else:
                # No live host to tell (it died, or closed the session since): the group
                # membership, kept in the layer, is all that is left.
                await self.host.leave_group(group_name(session_id), ctx.channel_name)
        except Exception as exc:
            # The host's sweep still detaches connections of workers that went away.
            logger.warning("could not detach %s from its host: %r", session_id, exc)

    ### Forwarding ###

    async def _forward(
        self, target: str, ctx: CallContext, op: Operation, session_id: str, args: dict[str, Any]
    ) -> Any:
        conn: messages.Conn = {
            "channel": ctx.channel_name,
            "user_id": ctx.user_id,
            "username": ctx.caller.username,
            "is_staff": ctx.caller.is_staff,
            "worker": self.host.channel_name,
        }
        message = messages.call(self.host.channel_name, op, session_id, args, conn)
        call_id = message["call_id"]
        future = asyncio.get_running_loop().create_future()
        self._pending[call_id] = future
        # Counted as attached before the host runs it: if the reply comes too late (or never,
        # the caller went away), the host may still attach this connection, and only a
        # session in ``ctx.attached`` is detached when the connection closes (a detach of a
        # session that was never attached does nothing).
        newly = op in ATTACHING and session_id not in ctx.attached
        if newly:
            ctx.attached.add(session_id)
        started = time.perf_counter()
        outcome = "failed"  # the layer refused the send, or the caller was cancelled
        try:
            try:
                await self.host.layer.send(target, message)
            except BaseException:
                if newly:
                    ctx.attached.discard(session_id)  # the host never got it
                raise
            async with asyncio.timeout(setting("FORWARD_TIMEOUT_S")):
                reply = await self._reply_while_alive(target, future)
            outcome = "moved" if reply.get("moved") else "error" if "error" in reply else "ok"
        except TimeoutError:
            outcome = "timeout"
            raise HostUnavailable() from None
        finally:
            self._pending.pop(call_id, None)
            families.FORWARD_SECONDS.labels(op.value).observe(time.perf_counter() - started)
            families.FORWARDED_CALLS.labels(op.value, outcome).inc()
        self.host.counters["forwarded"] += 1
        if "error" in reply or reply.get("moved"):
            if newly:
                ctx.attached.discard(session_id)
            if reply.get("moved"):
                raise SessionMoved()
            error = reply["error"]
            raise RemoteError(error["code"], error["message"], error.get("data"))
        if op in (Operation.CLOSE, Operation.DETACH_ID):
            ctx.attached.discard(session_id)
        return reply["result"]

    async def _reply_while_alive(self, target: str, future: asyncio.Future) -> dict[str, Any]:
        """
        The reply to a call forwarded to ``target``, checking each ``HEARTBEAT_S`` that the
        host still lives: a killed host never answers, and once it counts as dead its
        sessions are taken over, so the call fails over then (``TimeoutError``), not at
        ``FORWARD_TIMEOUT_S``.
        """
        while True:
            done, _ = await asyncio.wait({future}, timeout=setting("HEARTBEAT_S"))
            if done:
                return future.result()
            try:
                alive = await self.registry.alive(target)
            except Exception as exc:
                logger.debug("could not check that %s lives: %r", target, exc)
                continue  # FORWARD_TIMEOUT_S still bounds the wait
            if not alive:
                raise TimeoutError(f"host {target} died before it answered")

    def handle_reply(self, message: dict[str, Any]) -> None:
        future = self._pending.get(message.get("call_id", ""))
        if future is not None and not future.done():
            future.set_result(message)

    async def handle_call(self, message: dict[str, Any]) -> None:
        """Run a call forwarded by another worker and send the reply back."""
        name = message.get("op")
        logger.debug(
            "forwarded %s of %s from %s", name, message.get("session_id"), message["reply_to"]
        )
        reply = messages.reply(message.get("call_id", ""))
        try:
            if name in messages.HOST_QUERIES:
                reply["result"] = (
                    self.host.snapshot()
                    if name == messages.SNAPSHOT
                    else self.host.samples.export()
                )
                await self.host.layer.send(message["reply_to"], reply)
                return
            try:
                op = Operation(name)
            except ValueError:
                raise InternalError(f"unknown host operation {name!r}") from None
            ctx = self._proxy(message["conn"])
            self._running[ctx.channel_name] += 1
            try:
                reply["result"] = await OPERATIONS[op](self.host)(
                    ctx, message["session_id"], **message["args"]
                )
            finally:
                await self._call_ended(ctx, op, message["session_id"])
        except SessionMoved:
            reply["moved"] = True
        except RpcError as exc:
            reply["error"] = exc.as_error()
        except Exception:
            logger.exception("forwarded %s crashed", name)
            reply["error"] = InternalError(f"Internal error in forwarded {name}").as_error()
        await self.host.layer.send(message["reply_to"], reply)

    async def _call_ended(self, ctx: CallContext, op: Operation, session_id: str) -> None:
        channel = ctx.channel_name
        self._running[channel] -= 1
        if op is Operation.DETACH_ID and self._running[channel]:
            self._left.setdefault(channel, set()).add(session_id)
        if not self._running[channel]:
            del self._running[channel]
            for left_id in self._left.pop(channel, ()):
                try:
                    await self.host.detach_id(ctx, left_id)
                except Exception as exc:
                    logger.warning("could not detach %s from %s: %r", channel, left_id, exc)
        # Nothing attached (an interrupt, a slash command, a failed resume): a proxy kept
        # for it would stay until the host stops.
        self.forget_proxy(ctx)

    def _proxy(self, conn: dict[str, Any]) -> CallContext:
        """
        The proxy of a remote connection. A call naming the channel of a connection known
        here with another user or worker is refused (4001): the operations authorize the
        proxy's user, so one proxy must never act for two users.
        """
        known = self.host.connections.get(conn["channel"])
        if known is not None and (
            known.transport != "remote"
            or known.user_id != conn["user_id"]
            or known.peer != conn["worker"]
        ):
            logger.warning(
                "refused a forwarded call for %s as user %s: the channel is another's",
                conn["channel"],
                conn["user_id"],
            )
            raise SessionNotFound()
        ctx = self.remote_connections.get(conn["channel"])
        if ctx is None:
            ctx = CallContext(
                caller=Caller(conn["user_id"], conn["username"], conn["is_staff"]),
                channel_name=conn["channel"],
                transport="remote",
                peer=conn["worker"],
            )
            self.remote_connections[ctx.channel_name] = ctx
            self.host.connections[ctx.channel_name] = ctx
        return ctx

    def forget_proxy(self, ctx: CallContext) -> None:
        """Drop a remote connection's proxy once it is attached to nothing and not in use."""
        channel = ctx.channel_name
        if (
            ctx.transport == "remote"
            and not ctx.attached
            and not self._running[channel]
            and self.remote_connections.get(channel) is ctx
        ):
            del self.remote_connections[channel]
            self.host.connections.pop(channel, None)

    async def sweep_remote(self) -> int:
        """Detach connections whose worker died without saying goodbye."""
        dead_workers: dict[str, bool] = {}
        detached = 0
        for ctx in list(self.remote_connections.values()):
            worker = ctx.peer
            if worker not in dead_workers:
                dead_workers[worker] = not await self.registry.alive(worker)
            if dead_workers[worker]:
                for session_id in list(ctx.attached):
                    await self.host.detach_id(ctx, session_id)
                    detached += 1
                ctx.attached.clear()
                self.forget_proxy(ctx)
        return detached
