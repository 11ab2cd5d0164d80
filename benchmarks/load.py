"""
The client load, shared by every target: a lean JSON-RPC client over ``websockets`` and one
coroutine per benchmark phase (rpc, stream, churn, memory fill). Each phase returns a plain
dict of figures; nothing here knows which server it is talking to.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import psutil
from websockets.asyncio.client import ClientConnection, connect

#: Seconds any single request, connect or ready frame may take before the phase fails.
TIMEOUT = 30.0
#: Unmeasured lead-in before each later window of ``rpc_rounds_interleaved``.
SLICE_WARMUP_S = 0.2


#: Environment of every gateway under load. The load sends back to back, far over the default
#: 200 messages/s per connection: measure the gateway, not its rate-limit policy (the limiter
#: still runs, with an unlimited rate).
GATEWAY_ENV = {
    "HERMES_GATEWAY_OPTIONS": json.dumps({"RATE_LIMIT_PER_S": 0, "USER_RATE_LIMIT_PER_S": 0})
}


class LoadError(Exception):
    """The server answered something the benchmark cannot use (error response, bad frame)."""


class Client:
    """One WebSocket connection speaking newline-free JSON-RPC: one request per frame."""

    def __init__(self, ws: ClientConnection):
        self.ws = ws
        self._ids = itertools.count(1)
        self.ready: dict[str, Any] | None = None

    @classmethod
    async def open(cls, url: str, token: str) -> Client:
        # compression=None: measure the application, not permessage-deflate (which daphne and
        # uvicorn negotiate differently); proxy=None: never route loopback through a proxy.
        ws = await connect(
            f"{url}?token={token}",
            compression=None,
            proxy=None,
            max_size=None,
            ping_interval=None,
            open_timeout=TIMEOUT,
            close_timeout=TIMEOUT,
        )
        client = cls(ws)
        async with asyncio.timeout(TIMEOUT):
            first = await client.recv()
        if first.get("params", {}).get("type") != "gateway.ready":
            await ws.close()
            raise LoadError(f"first frame is not gateway.ready: {first!r}")
        client.ready = first
        return client

    async def recv(self) -> dict[str, Any]:
        return json.loads(await self.ws.recv())

    async def send_request(self, method: str, params: dict[str, Any] | None = None) -> int:
        request_id = next(self._ids)
        await self.ws.send(
            json.dumps(
                {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {}}
            )
        )
        return request_id

    async def response(self, request_id: int, on_event: Callable | None = None) -> dict[str, Any]:
        """Read frames until the response to ``request_id``; events go to ``on_event``."""
        while True:
            message = await self.recv()
            if message.get("id") == request_id and "method" not in message:
                return message
            if on_event is not None and message.get("method") == "event":
                on_event(message["params"])

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        request_id = await self.send_request(method, params)
        async with asyncio.timeout(TIMEOUT):
            return await self.response(request_id)

    async def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        message = await self.request(method, params)
        if "result" not in message:
            raise LoadError(f"{method} failed: {message.get('error')!r}")
        return message["result"]

    async def close(self) -> None:
        await self.ws.close()


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of ``values`` (0.0 for an empty sequence)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


T = TypeVar("T")


def rotated(items: Sequence[T], shift: int) -> list[T]:
    """``items`` starting at ``shift`` (wrapping): an order in which no item always runs first."""
    shift %= len(items)
    return [*items[shift:], *items[:shift]]


async def _open_many(url: str, tokens: Sequence[str]) -> list[Client]:
    return list(await asyncio.gather(*(Client.open(url, token) for token in tokens)))


async def _close_many(clients: Sequence[Client]) -> None:
    await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)


### rpc ###


async def rpc_load(url: str, token: str, connections: int, duration: float, warmup: float):
    """
    ``connections`` clients, each with one session, send ``session.list`` back to back: one
    request in flight per connection. Requests sent and answered inside the ``duration``
    window after ``warmup`` count; error responses are counted apart.
    """
    clients = await _rpc_clients(url, token, connections)
    try:
        latencies, errors = await _rpc_window(clients, warmup, duration)
    finally:
        await _close_many(clients)
    return _rpc_figures(latencies, errors, connections, duration)


async def rpc_rounds_interleaved(
    targets: dict[str, tuple[str, str]],
    connections: int,
    duration: float,
    warmup: float,
    slices: int,
) -> dict[str, dict[str, Any]]:
    """
    ``rpc_load`` for several servers at once (``targets``: name -> (url, token)), their
    ``duration`` cut into ``slices`` windows that take turns, so a slow spell of a shared
    machine lands on every server alike. Each server's clients stay connected throughout;
    the first window of each is preceded by ``warmup``, the later ones by a short one.
    """
    names = list(targets)
    clients = {}
    try:
        for name, (url, token) in targets.items():
            clients[name] = await _rpc_clients(url, token, connections)
        window = duration / slices
        latencies: dict[str, list[float]] = {name: [] for name in names}
        errors = dict.fromkeys(names, 0)
        for index in range(slices):
            for name in rotated(names, index):
                lead = warmup if index == 0 else min(warmup, SLICE_WARMUP_S)
                answered, failed = await _rpc_window(clients[name], lead, window)
                latencies[name] += answered
                errors[name] += failed
    finally:
        for opened in clients.values():
            await _close_many(opened)
    return {
        name: _rpc_figures(latencies[name], errors[name], connections, duration) for name in names
    }


async def _rpc_clients(url: str, token: str, connections: int) -> list[Client]:
    clients = await _open_many(url, [token] * connections)
    try:
        for client in clients:
            await client.call("session.create", {"title": "rpc"})
    except BaseException:
        await _close_many(clients)
        raise
    return clients


async def _rpc_window(
    clients: Sequence[Client], warmup: float, duration: float
) -> tuple[list[float], int]:
    """Every client back to back; what was sent and answered inside the window counts."""
    start = time.perf_counter() + warmup
    end = start + duration
    results = await asyncio.gather(*(_rpc_worker(c, start, end) for c in clients))
    latencies = [lat for worker_latencies, _ in results for lat in worker_latencies]
    return latencies, sum(worker_errors for _, worker_errors in results)


def _rpc_figures(
    latencies: list[float], errors: int, connections: int, duration: float
) -> dict[str, Any]:
    return {
        "connections": connections,
        "duration_s": duration,
        "requests": len(latencies),
        "errors": errors,
        "req_per_s": len(latencies) / duration,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }


async def _rpc_worker(client: Client, start: float, end: float) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    template = '{"jsonrpc":"2.0","id":%d,"method":"session.list","params":{}}'
    ids = itertools.count(1_000_000)
    while True:
        request_id = next(ids)
        sent = time.perf_counter()
        if sent >= end:
            return latencies, errors
        await client.ws.send(template % request_id)
        async with asyncio.timeout(TIMEOUT):
            message = await client.response(request_id)
        answered = time.perf_counter()
        if sent >= start and answered <= end:
            if "result" in message:
                latencies.append(answered - sent)
            else:
                errors += 1


### stream ###


def prompt_of(words: int) -> str:
    """A prompt of exactly ``words`` whitespace-separated words."""
    return " ".join(f"w{index:05d}" for index in range(words))


async def stream_load(url: str, token: str, connections: int, words: int):
    """
    ``connections`` clients each submit a ``words``-word prompt at the same moment and read
    the turn to ``message.complete``. Words are counted in the ``message.delta`` texts (deltas
    may be coalesced), and every turn must deliver exactly ``words`` words.
    """
    text = prompt_of(words)
    clients = await _open_many(url, [token] * connections)
    try:
        sessions = [
            (await client.call("session.create", {"title": "stream"}))["session_id"]
            for client in clients
        ]
        go = asyncio.Event()
        runs = [
            asyncio.create_task(_stream_turn(client, session_id, text, go))
            for client, session_id in zip(clients, sessions, strict=True)
        ]
        await asyncio.sleep(0.05)
        go.set()
        async with asyncio.timeout(max(60.0, words * connections / 500)):
            turns = await asyncio.gather(*runs)
        # Close the sessions (after the measurement) so repeated rounds start alike.
        for client, session_id in zip(clients, sessions, strict=True):
            await client.call("session.close", {"session_id": session_id})
    finally:
        await _close_many(clients)
    started = min(turn["submitted"] for turn in turns)
    finished = max(turn["completed"] for turn in turns)
    delivered = sum(turn["words"] for turn in turns)
    first = [turn["first_delta"] - turn["submitted"] for turn in turns]
    bad = [turn for turn in turns if turn["words"] != words or not turn["complete_ok"]]
    return {
        "connections": connections,
        "words_per_turn": words,
        "words_delivered": delivered,
        "delta_frames": sum(turn["frames"] for turn in turns),
        "elapsed_s": finished - started,
        "words_per_s": delivered / (finished - started),
        "first_delta_p50_ms": percentile(first, 0.5) * 1000,
        "first_delta_max_ms": max(first) * 1000,
        "incomplete_turns": len(bad),
    }


async def _stream_turn(client: Client, session_id: str, text: str, go: asyncio.Event):
    await go.wait()
    deltas: list[str] = []
    first_delta = 0.0
    submitted = time.perf_counter()
    await client.send_request("prompt.submit", {"session_id": session_id, "text": text})
    while True:
        message = await client.recv()
        if "id" in message and "error" in message:
            raise LoadError(f"prompt.submit failed: {message['error']!r}")
        if message.get("method") != "event":
            continue
        params = message["params"]
        if params.get("session_id") != session_id:
            continue
        if params["type"] == "message.delta":
            if not deltas:
                first_delta = time.perf_counter()
            deltas.append(params["payload"]["text"])
        elif params["type"] == "message.complete":
            completed = time.perf_counter()
            streamed = "".join(deltas)
            return {
                "submitted": submitted,
                "first_delta": first_delta or completed,
                "completed": completed,
                "frames": len(deltas),
                "words": len(streamed.split()),
                "complete_ok": params["payload"].get("text") == streamed,
            }


### churn ###


async def churn_load(url: str, token_for: Callable[[int], str], cycles: int, concurrency: int):
    """
    ``cycles`` rounds of connect -> gateway.ready -> session.create -> close, run by
    ``concurrency`` workers. ``token_for(i)`` picks the user of cycle ``i``.
    """
    counter = itertools.count()
    latencies: list[float] = []
    errors: list[str] = []

    async def worker() -> None:
        while (index := next(counter)) < cycles:
            began = time.perf_counter()
            try:
                client = await Client.open(url, token_for(index))
                try:
                    await client.call("session.create", {"title": f"churn {index}"})
                finally:
                    await client.close()
            except Exception as exc:  # a failed cycle is a figure, not a crash
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            latencies.append(time.perf_counter() - began)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return _churn_figures(
        cycles, concurrency, latencies, len(errors), errors[0] if errors else "", elapsed
    )


def combine_churn(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The figures of churn loads run in slices: their cycles over their summed time."""
    first_errors = [part["first_error"] for part in parts if part["errors"]]
    return _churn_figures(
        sum(part["cycles"] for part in parts),
        max(part["concurrency"] for part in parts),
        [latency for part in parts for latency in part["latencies_s"]],
        sum(part["errors"] for part in parts),
        first_errors[0] if first_errors else "",
        sum(part["elapsed_s"] for part in parts),
    )


def _churn_figures(
    cycles: int,
    concurrency: int,
    latencies: list[float],
    errors: int,
    first_error: str,
    elapsed: float,
) -> dict[str, Any]:
    return {
        "cycles": cycles,
        "concurrency": concurrency,
        "completed": len(latencies),
        "errors": errors,
        "first_error": first_error,
        "elapsed_s": elapsed,
        "cycles_per_s": len(latencies) / elapsed if elapsed else 0.0,
        "cycle_p50_ms": percentile(latencies, 0.5) * 1000,
        "cycle_p99_ms": percentile(latencies, 0.99) * 1000,
        "latencies_s": latencies,
    }


### memory ###


async def warm_connections(url: str, token: str, concurrency: int, rounds: int = 2) -> None:
    """Open/close ``concurrency`` connections per round, each creating and closing a session,
    so the server's per-connection high-water mark is reached before the RSS baseline."""
    for _ in range(rounds):
        clients = await _open_many(url, [token] * concurrency)
        for client in clients:
            session = await client.call("session.create", {"title": "warm-up"})
            await client.call("session.list")
            await client.call("session.close", {"session_id": session["session_id"]})
        await _close_many(clients)


async def fill_sessions(
    url: str,
    token_for: Callable[[int], str],
    sessions: int,
    per_connection: int,
    concurrency: int,
) -> dict[str, Any]:
    """
    Create ``sessions`` sessions, ``per_connection`` on each connection, then disconnect so
    every one is detached and idle. ``token_for(i)`` picks the user of the ``i``-th session.
    """
    counter = itertools.count()
    connections = -(-sessions // per_connection)
    created: list[str] = []

    async def worker() -> None:
        while (index := next(counter)) < connections:
            first = index * per_connection
            count = min(per_connection, sessions - first)
            client = await Client.open(url, token_for(first))
            try:
                for offset in range(count):
                    result = await client.call(
                        "session.create", {"title": f"idle {first + offset}"}
                    )
                    created.append(result["session_id"])
            finally:
                await client.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {
        "session_ids": created,
        "sessions": len(created),
        "connections": connections,
        "elapsed_s": time.perf_counter() - started,
    }


async def count_statuses(url: str, tokens: Sequence[str], ids: set[str]) -> dict[str, int]:
    """``session.list`` as each user: how many of the sessions ``ids`` are in each status
    (rows of earlier runs, on other server processes, are left out)."""
    totals: dict[str, int] = {}
    for token in tokens:
        client = await Client.open(url, token)
        rows: list[dict] = []
        params: dict = {"limit": 200}
        try:
            while True:  # every page: a user may hold more sessions than one page shows
                page = await client.call("session.list", params)
                rows += page["sessions"]
                if not page.get("next_cursor"):
                    break
                params = {"limit": 200, "cursor": page["next_cursor"]}
        finally:
            await client.close()
        for row in rows:
            if row["session_id"] not in ids:
                continue
            totals[row["status"]] = totals.get(row["status"], 0) + 1
    return totals


class Sampler:
    """
    Calls ``sample()`` on a thread every ``interval`` seconds while the ``with`` block runs,
    and once more when it ends: what a server holds *during* a phase (peak RSS, slash-worker
    children) without slowing the load's event loop.
    """

    def __init__(self, sample: Callable[[], None], interval: float = 0.05):
        self._sample = sample
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._sample()
            except psutil.Error:
                return  # the server is gone
            self._stop.wait(self._interval)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        with contextlib.suppress(psutil.Error):
            self._sample()
