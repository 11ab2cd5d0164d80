"""
``Gateway``: the typed API over one logical connection. It matches responses to requests,
routes each session event to its running ``Turn`` (or to ``events()``), drops events already
seen (by ``seq``) and, when the link drops, redials with backoff and resumes every session it
holds from the last ``seq`` it saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import subprocess
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .connection import (
    Backoff,
    Dialer,
    DialError,
    Link,
    LinkClosed,
    StdioDialer,
    WebSocketDialer,
)
from .errors import (
    CLOSE_FORBIDDEN,
    CLOSE_SERVICE_RESTART,
    AuthenticationFailed,
    ClientConnectionError,
    ConnectFailed,
    ConnectionLost,
    GatewayError,
    SessionNotFound,
    WorkerDraining,
    error_from_wire,
)
from .events import (
    TURN_EVENTS,
    Disconnected,
    Event,
    GatewayReady,
    MessageComplete,
    Reconnected,
    ResumeGap,
    RetryScheduled,
    parse_event,
)
from .results import Command, HistoryPage, Message, Resumed, SessionInfo, SessionPage
from .turn import Turn

logger = logging.getLogger(__name__)

#: Methods sent again after a reconnect when the link dropped before their answer: repeating
#: them changes nothing. The others (a prompt, a slash command, an answer) raise ConnectionLost.
SAFE_METHODS = frozenset(
    {
        "gateway.ping",
        "session.list",
        "session.resume",
        "session.history",
        "session.close",
        "session.interrupt",
        "commands.catalog",
        "complete.slash",
        "rpc.discover",
    }
)
#: A link that drops sooner than this after opening counts as a failed attempt (backoff grows).
STABLE_AFTER_S = 1.0
_END = object()

Choice = Literal["once", "session", "deny"]


class _Dropped(Exception):
    """The link a request went out on dropped before its answer came."""


@dataclass
class _Pending:
    method: str
    link: Link
    future: asyncio.Future[Any]


class Gateway:
    """A client of the gateway; use ``connect()`` or ``connect_stdio()`` to get one."""

    def __init__(
        self,
        dial: Dialer,
        *,
        backoff: Backoff | None = None,
        reconnect: bool = True,
        call_timeout: float | None = 60.0,
    ) -> None:
        self._dial = dial
        self.backoff = backoff or Backoff()
        self.reconnect = reconnect
        self.call_timeout = call_timeout
        self.ready: GatewayReady | None = None
        self._link: Link | None = None
        self._opened_at = 0.0
        self._quick_drops = 0
        self._attempts = 0
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._connected = asyncio.Event()
        self._events: asyncio.Queue[Any] = asyncio.Queue()
        #: Sessions held (created or resumed): the last ``seq`` seen of each.
        self._seen: dict[str, int] = {}
        #: Where to resume a held session from when no event of it came yet.
        self._floor: dict[str, int] = {}
        self._turns: dict[str, list[Turn]] = {}
        #: Gap reconciliations waiting for a session's replay to reach a ``seq``.
        self._watermarks: dict[str, tuple[int, Resumed]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._resumer: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._closing = False
        #: Set when the client itself left a draining worker: redial as after a 1012.
        self._left_draining = False
        #: A young link's restart was redialled at once: the next quick drop backs off.
        self._restart_excused = False

    # Lifecycle.

    async def open(self) -> Gateway:
        """Dial (with backoff) and start reading; raises ConnectFailed or AuthenticationFailed."""
        try:
            link = await self._dial_retrying()
        except BaseException as exc:
            self._fail(exc)
            raise
        self._use(link)
        self._connected.set()
        self._reader = asyncio.get_running_loop().create_task(self._read_loop())
        return self

    async def close(self) -> None:
        """Close the link; calls, turns and ``events()`` still waiting end with ConnectionLost."""
        if self._closing:
            return
        self._closing = True
        for task in (self._resumer, self._reader):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._link is not None:
            with contextlib.suppress(Exception):
                await self._link.close()
        self._fail(ConnectionLost("the client was closed"), end_events=True)

    async def __aenter__(self) -> Gateway:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def link(self) -> Link | None:
        """The current link (a ``WebSocketLink`` or ``StdioLink``), None while redialing."""
        return self._link if self._connected.is_set() else None

    @property
    def sessions(self) -> tuple[str, ...]:
        """The sessions this client holds and resumes after a reconnect."""
        return tuple(self._seen)

    # The methods of PROTOCOL.md.

    async def ping(self) -> bool:
        return bool((await self.call("gateway.ping"))["pong"])

    async def create_session(self, title: str = "") -> SessionInfo:
        """Create a session (attached to this client, which now holds it)."""
        info = SessionInfo.from_wire(await self.call("session.create", {"title": title}))
        self._seen.setdefault(info.session_id, 0)
        return info

    async def list_sessions(
        self,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        status: str | None = None,
        query: str | None = None,
    ) -> SessionPage:
        """
        A page of the caller's sessions, newest activity first (a list, as before, with
        ``next_cursor`` to pass as ``cursor`` for the next page); filters are optional.
        """
        given = {"limit": limit, "cursor": cursor, "status": status, "query": query}
        params = {name: value for name, value in given.items() if value is not None}
        return SessionPage.from_wire(await self.call("session.list", params or None))

    async def resume(self, session_id: str, last_seq: int | None = None) -> Resumed:
        """
        Attach to a session and hold it; events after ``last_seq`` are replayed (without it:
        the running turn's). A ``gap`` in the answer means some are lost: trust ``messages``.
        """
        params: dict[str, Any] = {"session_id": session_id}
        if last_seq is not None:
            params["last_seq"] = last_seq
        held = session_id in self._seen
        self._seen[session_id] = max(self._seen.get(session_id, 0), last_seq or 0)
        try:
            resumed = Resumed.from_wire(await self.call("session.resume", params))
        except BaseException:
            if not held:
                self._seen.pop(session_id, None)
            raise
        if resumed.replayed == 0 and resumed.last_seq is not None:
            # Nothing replayed: older events are history, not to be replayed by a reconnect.
            self._floor[session_id] = max(self._floor.get(session_id, 0), resumed.last_seq)
        return resumed

    async def history(
        self, session_id: str, *, before: int | None = None, limit: int | None = None
    ) -> HistoryPage:
        """
        Older transcript messages (beyond v1): the page before message id ``before`` (the
        ``id`` of the oldest message you have, e.g. of ``resume``'s ``messages``, or the
        last page's ``next_before``); without it, the newest. Does not hold the session.
        """
        given = {"session_id": session_id, "before": before, "limit": limit}
        params = {name: value for name, value in given.items() if value is not None}
        return HistoryPage.from_wire(await self.call("session.history", params))

    async def close_session(self, session_id: str) -> bool:
        """End a session (turn cancelled, slash worker stopped); it is no longer held."""
        result = await self.call("session.close", {"session_id": session_id})
        self._forget(session_id)
        return bool(result.get("closed"))

    async def interrupt(self, session_id: str) -> bool:
        """Stop the session's running turn; False when none was running."""
        result = await self.call("session.interrupt", {"session_id": session_id})
        return bool(result.get("interrupted"))

    def prompt(self, session_id: str, text: str) -> Turn:
        """Submit a prompt at once; iterate the returned Turn for its events, await it for text."""
        turn = Turn(session_id, text, self.interrupt)
        self._turns.setdefault(session_id, []).append(turn)
        asyncio.get_running_loop().create_task(self._submit(turn))
        return turn

    async def respond_approval(self, session_id: str, request_id: str, choice: Choice) -> None:
        """Answer an ``approval.request``: run the tool once, for the session, or deny it."""
        params = {"session_id": session_id, "request_id": request_id, "choice": choice}
        await self.call("approval.respond", params)

    async def respond_clarify(self, session_id: str, request_id: str, answer: str) -> None:
        """Answer a ``clarify.request``."""
        params = {"session_id": session_id, "request_id": request_id, "answer": answer}
        await self.call("clarify.respond", params)

    async def slash(self, session_id: str, command: str) -> str:
        """Run ``/name args`` in the session's slash worker; returns its output."""
        params = {"session_id": session_id, "command": command}
        return str((await self.call("slash.exec", params)).get("output", ""))

    async def commands(self) -> list[Command]:
        result = await self.call("commands.catalog")
        return [
            Command(c.get("name", ""), c.get("description", ""), c.get("usage", ""))
            for c in result.get("commands", ())
        ]

    async def complete(self, text: str) -> list[str]:
        """Completions of a partial slash command (``"/he"`` -> ``["/help"]``)."""
        return list((await self.call("complete.slash", {"text": text})).get("completions", ()))

    async def discover(self) -> dict[str, Any]:
        """The gateway's OpenRPC document (beyond v1): its methods, params, results and events."""
        return await self.call("rpc.discover")

    async def events(self) -> AsyncIterator[Event]:
        """Every event no Turn took (other sessions, ``session.closed``, ``client.*``)."""
        while True:
            item = await self._events.get()
            if item is _END:
                self._events.put_nowait(_END)  # other iterators end too
                return
            if isinstance(item, BaseException):
                self._events.put_nowait(item)  # the failure stays for every later iterator
                raise item
            yield item

    async def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send one request and return its ``result``; an error response raises GatewayError."""
        return await self._request(method, params, reconnecting=False)

    async def _request(
        self, method: str, params: dict[str, Any] | None, *, reconnecting: bool
    ) -> dict[str, Any]:
        while True:
            if not reconnecting:
                await self._connected.wait()
            if self._failure is not None:
                raise self._failure
            link = self._link
            assert link is not None
            request_id = next(self._ids)
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._pending[request_id] = _Pending(method, link, future)
            message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
            if params is not None:
                message["params"] = params
            try:
                await link.send(json.dumps(message))
                return await asyncio.wait_for(asyncio.shield(future), self.call_timeout)
            except (_Dropped, LinkClosed) as exc:
                if isinstance(exc, LinkClosed) and self._link is link:
                    self._connected.clear()  # the reader is about to see it dropped too
                if method in SAFE_METHODS and not reconnecting and self._failure is None:
                    continue  # sent again once the link is back
                raise ConnectionLost(f"{method}: the connection dropped before its answer") from exc
            finally:
                self._pending.pop(request_id, None)

    # Reading and routing.

    def _use(self, link: Link) -> None:
        self._link = link
        self._opened_at = time.monotonic()
        ready = parse_event(link.ready)
        self.ready = ready if isinstance(ready, GatewayReady) else None

    async def _read_loop(self) -> None:
        while True:
            link = self._link
            assert link is not None
            try:
                text = await link.recv()
            except LinkClosed as exc:
                if self._closing:
                    return
                try:
                    await self._relink(exc)
                except ClientConnectionError as error:
                    self._fail(error)
                    return
                continue
            try:
                message = json.loads(text)
            except ValueError:
                logger.warning("not JSON from the gateway: %.200r", text)
                continue
            if isinstance(message, dict):
                self._handle(message)

    def _handle(self, message: dict[str, Any]) -> None:
        if message.get("method") == "event" and isinstance(message.get("params"), dict):
            self._on_event(parse_event(message["params"]))
            return
        pending = self._pending.get(message.get("id"))  # type: ignore[arg-type]
        if pending is None or pending.future.done():
            return
        if "error" in message:
            pending.future.set_exception(error_from_wire(message["error"]))
        else:
            result = message.get("result")
            if pending.method == "session.resume" and isinstance(result, dict):
                # Now, before the replayed events that follow the response on the link.
                self._take_running_turn(result)
            pending.future.set_result(result if isinstance(result, dict) else {})

    def _on_event(self, event: Event) -> None:
        sid, seq = event.session_id, event.seq
        if sid is not None and seq is not None and sid in self._seen:
            if seq <= self._seen[sid]:
                return  # replayed after a reconnect, already delivered
            self._seen[sid] = seq
        if sid is not None and event.type in TURN_EVENTS and self._to_turn(sid, event):
            self._check_watermark(sid)
            return
        if event.type == "session.closed" and sid is not None:
            self._forget(sid)
            for turn in self._turns.pop(sid, ()):
                turn.fail(SessionNotFound(f"session closed ({event.payload.get('reason')})"))
        self._events.put_nowait(event)
        if sid is not None:
            self._check_watermark(sid)

    def _take_running_turn(self, result: dict[str, Any]) -> None:
        """
        The resume's ``running_turn`` (its start is no longer buffered) as one delta: the text
        up to its ``seq`` that the turn has not streamed yet, so no word is lost or repeated.
        """
        running, sid = result.get("running_turn"), result.get("session_id")
        if not isinstance(running, dict) or not isinstance(sid, str):
            return
        seq, text, turn_id = running.get("seq"), running.get("text"), running.get("turn_id")
        if not isinstance(seq, int) or not isinstance(text, str) or not isinstance(turn_id, str):
            return
        turn = next((t for t in self._turns.get(sid, ()) if t.turn_id == turn_id), None)
        streamed = turn.streamed if turn is not None else ""
        if not text.startswith(streamed):
            logger.warning("session %s: running turn %s does not continue its text", sid, turn_id)
            streamed = ""
        missing = text[len(streamed) :]
        if missing:
            payload = {"turn_id": turn_id, "text": missing}
            self._on_event(
                parse_event(
                    {"type": "message.delta", "session_id": sid, "seq": seq, "payload": payload}
                )
            )

    def _to_turn(self, sid: str, event: Event) -> bool:
        """Give a session event to its turn; False when no turn of ours takes it."""
        turns = self._turns.get(sid)
        if not turns:
            return False
        known = [t for t in turns if t.turn_id is not None and t.owns(event)]
        if known:
            turn = known[-1]
            turn.feed(event)
            if turn.done:
                turns.remove(turn)
            return True
        waiting = [t for t in turns if t.turn_id is None]
        if waiting:
            waiting[-1].early.append(event)
            return True
        return False

    async def _submit(self, turn: Turn) -> None:
        try:
            result = await self.call(
                "prompt.submit", {"session_id": turn.session_id, "text": turn.text}
            )
        except BaseException as exc:
            self._drop_turn(turn)
            turn.fail(exc)
            for event in turn.early:
                self._on_event_again(event)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        turn.accept(str(result.get("turn_id")))
        self._seen.setdefault(turn.session_id, 0)  # prompting re-attaches a session
        early, turn.early = turn.early, []
        for event in early:
            self._on_event_again(event)

    def _on_event_again(self, event: Event) -> None:
        """Route an event held back while its turn was unknown (already counted as seen)."""
        sid = event.session_id
        if sid is None or not self._to_turn(sid, event):
            self._events.put_nowait(event)

    def _drop_turn(self, turn: Turn) -> None:
        turns = self._turns.get(turn.session_id, [])
        if turn in turns:
            turns.remove(turn)

    def _forget(self, session_id: str) -> None:
        self._seen.pop(session_id, None)
        self._floor.pop(session_id, None)
        self._watermarks.pop(session_id, None)

    # Reconnecting.

    async def _dial_retrying(self) -> Link:
        """Dial until a link opens, waiting ``backoff`` delays; counts attempts in ``_attempts``."""
        failures = self._quick_drops
        self._attempts = 0
        while True:
            self._attempts += 1
            if failures:
                delay = self.backoff.delay(failures)
                await asyncio.sleep(delay)
            try:
                return await self._dial()
            except DialError as exc:
                if not exc.retry:
                    raise exc.error from exc
                failures += 1
                limit = self.backoff.max_attempts
                if limit is not None and failures >= limit:
                    raise ConnectFailed(
                        f"gave up after {failures} attempts: {exc}", failures
                    ) from exc.error
                self._events.put_nowait(
                    RetryScheduled(
                        attempt=failures, delay=self.backoff.delay(failures), reason=str(exc)
                    )
                )

    async def _relink(self, closed: LinkClosed) -> None:
        """The link dropped: fail or re-queue its requests, redial, then resume in a task."""
        self._connected.clear()
        dead = self._link
        for pending in list(self._pending.values()):
            if pending.link is dead and not pending.future.done():
                pending.future.set_exception(_Dropped())
        if self._resumer is not None:
            self._resumer.cancel()
        if closed.code == CLOSE_FORBIDDEN:
            raise AuthenticationFailed(f"the gateway closed the connection: {closed}")
        if not self.reconnect:
            raise ConnectionLost(str(closed))
        quick = time.monotonic() - self._opened_at < STABLE_AFTER_S
        restart = closed.code == CLOSE_SERVICE_RESTART or self._left_draining
        self._left_draining = False
        if not quick:
            self._quick_drops = 0
            self._restart_excused = False
        elif restart and not self._quick_drops and not self._restart_excused:
            # The worker drains for a restart: the next connection lands on another, at once.
            # Only once in a row: a worker that stays draining must not be redialled hot.
            self._restart_excused = True
        else:
            self._quick_drops += 1
        self._events.put_nowait(Disconnected(reason=str(closed)))
        logger.debug("gateway link lost (%s); reconnecting", closed)
        link = await self._dial_retrying()
        self._use(link)
        self._resumer = asyncio.get_running_loop().create_task(self._resume_held())

    async def _resume_held(self) -> None:
        """Resume every held session from its last seen seq, then let callers through."""
        resumed = []
        link = self._link
        for sid in list(self._seen):
            last_seq = max(self._seen.get(sid, 0), self._floor.get(sid, 0))
            params = {"session_id": sid, "last_seq": last_seq}
            try:
                result = Resumed.from_wire(
                    await self._request("session.resume", params, reconnecting=True)
                )
            except ConnectionLost:
                return  # the new link dropped too: the next one resumes
            except WorkerDraining:
                # This worker restarts: leave it, keeping every session held for the next link.
                logger.info("session %s: the worker is draining; reconnecting", sid)
                self._left_draining = True
                if link is not None:
                    await link.close()
                return
            except GatewayError as exc:
                logger.warning("could not resume session %s: %s", sid, exc)
                self._forget(sid)
                for turn in self._turns.pop(sid, ()):
                    turn.fail(exc)
                continue
            resumed.append(sid)
            if result.gap:
                self._on_gap(sid, last_seq, result)
        self._connected.set()
        self._events.put_nowait(Reconnected(attempts=self._attempts, sessions=tuple(resumed)))

    def _on_gap(self, sid: str, last_seq: int, result: Resumed) -> None:
        """Events were lost: say so, and end a turn that finished meanwhile from the transcript."""
        gap = ResumeGap(
            session_id=sid,
            last_seq=last_seq,
            status=result.status,
            messages=tuple({"role": m.role, "content": m.content} for m in result.messages),
        )
        turns = [t for t in self._turns.get(sid, ()) if t.turn_id is not None]
        for turn in turns:
            turn.feed(gap)
        if not turns:
            self._events.put_nowait(gap)
        if result.status != "running" and turns and result.last_seq is not None:
            # Replayed frames may still be on their way: reconcile once the last one came.
            mark = result.last_seq if result.replayed else 0
            self._watermarks[sid] = (mark, result)
            self._check_watermark(sid)

    def _check_watermark(self, sid: str) -> None:
        mark = self._watermarks.get(sid)
        if mark is None or self._seen.get(sid, 0) < mark[0]:
            return
        del self._watermarks[sid]
        for turn in list(self._turns.get(sid, ())):
            if turn.turn_id is not None and not turn.done:
                text = reply_to(turn.text, mark[1].messages)
                turn.feed(
                    MessageComplete(
                        session_id=sid,
                        turn_id=turn.turn_id,
                        text=text,
                        payload={"reconciled": True},
                    )
                )
                self._drop_turn(turn)

    def _fail(self, error: BaseException, *, end_events: bool = False) -> None:
        """Nothing more will come: fail every waiter with ``error``."""
        if self._failure is None:
            self._failure = error
        for pending in list(self._pending.values()):
            if not pending.future.done():
                pending.future.set_exception(error)
        for turns in self._turns.values():
            for turn in turns:
                turn.fail(error)
        self._turns.clear()
        self._events.put_nowait(_END if end_events else error)
        self._connected.set()  # callers waiting for the link see the failure


def reply_to(prompt: str, messages: Sequence[Message]) -> str:
    """The assistant message answering the latest user message ``prompt`` ("" if none)."""
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].role == "user" and messages[index].content == prompt:
            following = messages[index + 1 : index + 2]
            return following[0].content if following and following[0].role == "assistant" else ""
    return ""


class _Connector:
    """What ``connect()`` returns: ``async with`` it, or ``await`` it (then ``close()``)."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    def __await__(self):  # type: ignore[no-untyped-def]
        return self._gateway.open().__await__()

    async def __aenter__(self) -> Gateway:
        return await self._gateway.open()

    async def __aexit__(self, *exc: object) -> None:
        await self._gateway.close()


def connect(
    url: str,
    token: str | None = None,
    *,
    backoff: Backoff | None = None,
    reconnect: bool = True,
    call_timeout: float | None = 60.0,
    headers: dict[str, str] | None = None,
) -> _Connector:
    """A client of the gateway at ``url`` (``ws://host:port/api/ws``), token sent as bearer."""
    dialer = WebSocketDialer(url, token, headers=headers)
    return _Connector(
        Gateway(dialer, backoff=backoff, reconnect=reconnect, call_timeout=call_timeout)
    )


def connect_stdio(
    argv: Sequence[str],
    *,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
    stderr: Any = subprocess.DEVNULL,
    backoff: Backoff | None = None,
    reconnect: bool = True,
    call_timeout: float | None = 60.0,
) -> _Connector:
    """
    A client over a spawned ``gateway_stdio`` command (same API); if the process dies it is
    spawned again and the sessions resumed from the database.
    """
    dialer = StdioDialer(argv, cwd=cwd, env=env, stderr=stderr)
    return _Connector(
        Gateway(dialer, backoff=backoff, reconnect=reconnect, call_timeout=call_timeout)
    )
