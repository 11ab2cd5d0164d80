"""
A client that stops reading, against real daphne: a raw socket with a tiny receive buffer
creates sessions, reads the answers, then floods long prompts (the echo agent streams every
word back) and never reads again. The gateway runs with a lowered send queue (200 frames /
1 MiB), so the whole scenario takes a few seconds. It runs once per module; each test checks
one behaviour of that run. ``pytest -s`` prints its figures.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.support.live import ws_rpc
from tests.support.rawws import RawWebSocket, encode_frame
from tests.support.servers import Database, GatewayServer

pytestmark = pytest.mark.live

SEND_QUEUE_LIMIT = 200
SEND_QUEUE_BYTES = 1024 * 1024
REAP_GRACE_S = 2
SESSIONS = 4
#: Prompts per second from the stalled client, under the default rate limit (200/s).
FLOOD_RATE = 40.0
#: The flood gives up after this long; the send queue is full long before.
FLOOD_DEADLINE_S = 20.0
#: A long prompt under MAX_PROMPT_CHARS (32000): ~62 KB of output per accepted turn.
PROMPT = ("word " * 6200)[:31000]
MAX_RSS_GROWTH = 100 * 2**20


@dataclass
class StalledRun:
    """What one stalled-client scenario observed."""

    port: int = 0
    session_ids: list[str] = field(default_factory=list)
    requests: int = 0
    send_error: str = ""
    flood_s: float = 0.0
    ending: tuple[int | None, str] = (None, "")
    pings_while_flooding: int = 0
    pings_after: int = 0
    ping_errors: list[str] = field(default_factory=list)
    rows_after_close: dict[str, dict[str, Any]] = field(default_factory=dict)
    rows_after_grace: dict[str, dict[str, Any]] = field(default_factory=dict)
    rss_before: int = 0
    rss_peak: int = 0
    rss_after: int = 0
    log: str = ""


def flood(raw: RawWebSocket, run: StalledRun, done: threading.Event) -> None:
    """Send ``prompt.submit`` round robin over the sessions, never reading, until a send
    fails (the server dropped the connection) or the deadline."""
    frames = [
        encode_frame(
            json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": 100 + index,
                    "method": "prompt.submit",
                    "params": {"session_id": sid, "text": PROMPT},
                }
            ).encode()
        )
        for index, sid in enumerate(run.session_ids)
    ]
    started = time.monotonic()
    due = started
    try:
        while time.monotonic() - started < FLOOD_DEADLINE_S:
            raw.sock.sendall(frames[run.requests % len(frames)])
            run.requests += 1
            due += 1.0 / FLOOD_RATE
            time.sleep(max(0.0, due - time.monotonic()))
    except OSError as exc:
        run.send_error = type(exc).__name__
    finally:
        run.flood_s = time.monotonic() - started
        done.set()


async def rows_of(url: str, token: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    """``session.list`` from a fresh connection: the rows of ``ids``."""
    async with ws_rpc(url, token) as rpc:
        rows = (await rpc.call("session.list"))["sessions"]
    return {row["session_id"]: row for row in rows if row["session_id"] in ids}


async def wait_rows(url, token, ids, predicate, within: float) -> dict[str, dict[str, Any]]:
    """Poll ``session.list`` until every row of ``ids`` satisfies ``predicate``."""
    deadline = time.monotonic() + within
    while True:
        rows = await rows_of(url, token, ids)
        if len(rows) == len(ids) and all(predicate(row) for row in rows.values()):
            return rows
        if time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.2)


async def scenario(server: GatewayServer, alice: str, bob: str) -> StalledRun:
    run = StalledRun()
    async with ws_rpc(server.url, bob) as pinger:
        await pinger.call("session.list")
        run.rss_before = run.rss_peak = server.rss()

        raw = RawWebSocket(server.port, alice, recv_buffer=4096)
        with raw:
            assert raw.status == 101
            run.port = raw.sock.getsockname()[1]
            assert raw.recv_json()["params"]["type"] == "gateway.ready"
            run.session_ids = [
                raw.call("session.create", {"title": f"stalled {i}"})["session_id"]
                for i in range(SESSIONS)
            ]
            # From here on the stalled client never reads.
            done = threading.Event()
            flooder = threading.Thread(target=flood, args=(raw, run, done), daemon=True)
            flooder.start()
            while not done.is_set():
                try:
                    assert await pinger.call("gateway.ping") == {"pong": True}
                    run.pings_while_flooding += 1
                except Exception as exc:
                    run.ping_errors.append(repr(exc))
                    break
                run.rss_peak = max(run.rss_peak, server.rss())
                await asyncio.sleep(0.02)
            await asyncio.to_thread(flooder.join, 10)
            raw.sock.settimeout(5)
            run.ending = await asyncio.to_thread(raw.read_until_closed)

        run.rows_after_close = await wait_rows(
            server.url, alice, run.session_ids, lambda row: not row["attached"], 10
        )
        run.rows_after_grace = await wait_rows(
            server.url, alice, run.session_ids, lambda row: row["status"] == "closed", 15
        )
        for _ in range(5):
            try:
                assert await pinger.call("gateway.ping") == {"pong": True}
                run.pings_after += 1
            except Exception as exc:
                run.ping_errors.append(repr(exc))
    run.rss_after = server.rss()
    run.rss_peak = max(run.rss_peak, run.rss_after)
    run.log = server.log()
    return run


@pytest.fixture(scope="module")
def stalled_run(tmp_path_factory) -> StalledRun:
    database = Database(tmp_path_factory.mktemp("backpressure"))
    alice, bob = database.token("alice"), database.token("bob")
    options = {"SEND_QUEUE_LIMIT": SEND_QUEUE_LIMIT, "SEND_QUEUE_BYTES": SEND_QUEUE_BYTES}
    env = {
        "HERMES_GATEWAY_OPTIONS": json.dumps(options),
        "HERMES_TUI_WS_ORPHAN_REAP_GRACE_S": REAP_GRACE_S,
    }
    with GatewayServer(database, env=env) as server:
        run = asyncio.run(scenario(server, alice, bob))
    print(
        f"\nstalled client: {run.requests} prompts in {run.flood_s:.1f}s until {run.send_error};"
        f" it then read {run.ending}; {run.pings_while_flooding} pings answered meanwhile;"
        f" server RSS {run.rss_before / 2**20:.1f} -> peak {run.rss_peak / 2**20:.1f}"
        f" -> {run.rss_after / 2**20:.1f} MiB"
    )
    return run


def test_client_that_stops_reading_is_closed_with_4008(stalled_run):
    """Tests that the gateway closes a client that stops reading with 4008 (logged with its
    user and peer) and drops the connection, so its flood ends in a send error."""
    run = stalled_run
    assert f"limit send_queue hit by user=alice peer=127.0.0.1:{run.port} " in run.log
    close_line = re.search(
        rf"connection closed transport=websocket user=alice peer=127.0.0.1:{run.port} .*", run.log
    )
    assert close_line and "closed_by_gateway=4008" in close_line.group(0)
    assert run.send_error, f"the flood ran {run.flood_s:.1f}s without the server closing it"
    code, how = run.ending
    # Daphne drops the TCP connection when the close handshake cannot finish (the close
    # frame sits behind unsent data): the stalled client sees a reset or EOF; if the close
    # frame does get through, it carries 4008.
    assert how in ("close frame", "reset", "eof"), run.ending
    if how == "close frame":
        assert code == 4008
    assert "Traceback" not in run.log


def test_stalled_clients_sessions_are_detached_not_closed(stalled_run):
    """Tests that after the 4008 close the stalled client's sessions show as detached
    (attached false, not closed) in session.list from a fresh connection of the same user."""
    rows = stalled_run.rows_after_close
    assert set(rows) == set(stalled_run.session_ids)
    for row in rows.values():
        assert row["attached"] is False, row
        assert row["status"] in ("detached", "running"), row


def test_stalled_clients_sessions_are_reaped_after_the_grace(stalled_run):
    """Tests that the stalled client's detached sessions are reaped once the grace is over."""
    rows = stalled_run.rows_after_grace
    assert {sid: row["status"] for sid, row in rows.items()} == {
        sid: "closed" for sid in stalled_run.session_ids
    }
    for sid in stalled_run.session_ids:
        assert f"session {sid} reaped" in stalled_run.log


def test_other_client_keeps_answering_ping_while_one_is_stalled(stalled_run):
    """Tests that a well-behaved second client gets every gateway.ping answered while the
    stalled client floods and after it is closed."""
    assert stalled_run.ping_errors == []
    assert stalled_run.pings_while_flooding > 0
    assert stalled_run.pings_after == 5


def test_server_memory_stays_bounded_with_a_stalled_client(stalled_run):
    """Tests that the server's RSS grows by less than 100 MiB while a stalled client floods
    (the send queue holds at most 1 MiB for it)."""
    growth = stalled_run.rss_peak - stalled_run.rss_before
    assert growth < MAX_RSS_GROWTH, f"RSS grew by {growth / 2**20:.1f} MiB"
