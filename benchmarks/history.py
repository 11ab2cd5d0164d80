"""
Long-history benchmark: what ``session.list`` costs one user with many stored sessions.

    python benchmarks/history.py [--sizes 10,10000,100000] [--calls 200] [--json out.json]

For each size, a fresh migrated SQLite file gets that many closed sessions of one user
(bulk-inserted directly), and a real daphne serves it with ``LIST_CACHE_S=0`` so every call
reads the database (the index would answer repeated first pages from memory). One client
then times ``--calls`` calls each of: the default first page, the page after it (cursor), a
``status=closed`` page and a ``query`` page (a title substring one session in ten has).
Printed: p50 per kind in ms and the first page's response bytes. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.support.rawws import RawWebSocket  # noqa: E402
from tests.support.servers import Database, GatewayServer  # noqa: E402

#: "first 10" is a page of the same size at every history size (the smallest holds 10).
KINDS = ("first page", "first 10", "next page", "status=closed", "query")
USER = "history"


def fill(db_path: Path, count: int, username: str = USER) -> None:
    """Insert ``count`` closed sessions of ``username``, one minute of activity apart."""
    base = datetime(2026, 1, 1, tzinfo=UTC)
    with sqlite3.connect(db_path) as conn:
        (user_id,) = conn.execute(
            "SELECT id FROM auth_user WHERE username = ?", (username,)
        ).fetchone()
        rows = []
        for i in range(count):
            at = (base + timedelta(minutes=i)).strftime("%Y-%m-%d %H:%M:%S.%f")
            title = f"session {i} {'needle' if i % 10 == 0 else 'hay'}"
            rows.append(
                (f"{i:032x}", user_id, title, "closed", "closed", 0, "", "", 0, at, at, at, 0)
            )
        conn.executemany(
            "INSERT INTO gateway_app_gatewaysession (id, user_id, title, status, close_reason,"
            " attached, host_worker, host_channel, last_seq, created_at, last_activity,"
            " closed_at, message_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.execute("ANALYZE")


def timed(ws: RawWebSocket, params: dict[str, Any] | None) -> tuple[float, int]:
    """One call's wall time in ms and the bytes its response took on the wire."""
    before = ws.bytes_read
    start = time.perf_counter()
    ws.call("session.list", params)
    return (time.perf_counter() - start) * 1000, ws.bytes_read - before


def measure(count: int, calls: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        database = Database(Path(tmp))
        token = database.token(USER)
        fill(database.path, count)
        options = {"LIST_CACHE_S": 0, "RATE_LIMIT_PER_S": 0, "USER_RATE_LIMIT_PER_S": 0}
        env = {"HERMES_GATEWAY_OPTIONS": json.dumps(options)}
        with GatewayServer(database, env=env) as server:
            ws = RawWebSocket(server.port, token, timeout=60)
            try:
                cursor = ws.call("session.list")["next_cursor"]
                params = {
                    "first page": None,
                    "first 10": {"limit": 10},
                    "next page": {"cursor": cursor} if cursor else None,
                    "status=closed": {"status": "closed"},
                    "query": {"query": "needle"},
                }
                figures: dict[str, Any] = {"sessions": count}
                for kind in KINDS:
                    samples = [timed(ws, params[kind]) for _ in range(calls)]
                    figures[kind] = statistics.median(ms for ms, _ in samples)
                    if kind == "first page":
                        figures["bytes"] = samples[0][1]
            finally:
                ws.sock.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,10000,100000")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = [measure(int(size), args.calls) for size in args.sizes.split(",")]
    print(
        "| stored sessions | " + " | ".join(f"{k} p50 ms" for k in KINDS) + " | first page bytes |"
    )
    print("|---:|" + "---:|" * (len(KINDS) + 1))
    for row in results:
        cells = " | ".join(f"{row[k]:.2f}" for k in KINDS)
        print(f"| {row['sessions']} | {cells} | {row['bytes']} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
