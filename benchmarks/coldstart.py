"""
Cold-start benchmark: what reviving a stored session costs for a long transcript.

    python benchmarks/coldstart.py [--messages 10,10000] [--sessions 5] [--chars 500]

For each transcript length, a fresh migrated SQLite file gets ``--sessions`` closed
sessions of one user, each with that many messages of ``--chars`` characters (bulk-inserted
directly), and a real daphne serves it. One client then resumes each session once (each
resume is a cold start: the session is not live). Printed per length: the median resume
time in ms, the gateway's RSS growth per cold-started session, its peak RSS growth over
the run (VmHWM) and the ``omitted`` of the resumes. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.support.rawws import RawWebSocket  # noqa: E402
from tests.support.servers import Database, GatewayServer  # noqa: E402

USER = "coldstart"


def fill(db_path: Path, sessions: int, messages: int, chars: int) -> list[str]:
    """Insert ``sessions`` closed sessions of ``USER`` with ``messages`` messages each."""
    at = datetime(2026, 1, 1, tzinfo=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    ids = [f"{i:032x}" for i in range(1, sessions + 1)]
    with sqlite3.connect(db_path) as conn:
        (user_id,) = conn.execute("SELECT id FROM auth_user WHERE username = ?", (USER,)).fetchone()
        conn.executemany(
            "INSERT INTO gateway_app_gatewaysession (id, user_id, title, status, close_reason,"
            " attached, host_worker, host_channel, last_seq, created_at, last_activity,"
            " closed_at, message_count)"
            " VALUES (?, ?, 'long', 'closed', 'closed', 0, '', '', 0, ?, ?, ?, ?)",
            [(sid, user_id, at, at, at, messages) for sid in ids],
        )
        for sid in ids:
            conn.executemany(
                "INSERT INTO gateway_app_message (session_id, role, content, turn_id, data,"
                " interrupted, created_at) VALUES (?, ?, ?, '', '{}', 0, ?)",
                (
                    (sid, "user" if i % 2 == 0 else "assistant", f"{i} " + "x" * chars, at)
                    for i in range(messages)
                ),
            )
        conn.execute("ANALYZE")
    return ids


def peak_rss(pid: int) -> int:
    """The process's peak resident set (VmHWM) in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def measure(messages: int, sessions: int, chars: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        database = Database(Path(tmp))
        token = database.token(USER)
        ids = fill(database.path, sessions, messages, chars)
        options = {"RATE_LIMIT_PER_S": 0, "USER_RATE_LIMIT_PER_S": 0}
        env = {"HERMES_GATEWAY_OPTIONS": json.dumps(options)}
        with GatewayServer(database, env=env) as server:
            ws = RawWebSocket(server.port, token, timeout=120)
            try:
                ws.call("gateway.ping")
                rss_before, hwm_before = server.rss(), peak_rss(server.pid)
                times, omitted = [], []
                for sid in ids:
                    start = time.perf_counter()
                    result = ws.call("session.resume", {"session_id": sid})
                    times.append((time.perf_counter() - start) * 1000)
                    omitted.append(result["omitted"])
                rss_after, hwm_after = server.rss(), peak_rss(server.pid)
            finally:
                ws.sock.close()
    return {
        "messages": messages,
        "resume_ms": statistics.median(times),
        "rss_per_session_mb": (rss_after - rss_before) / sessions / 2**20,
        "peak_growth_mb": (hwm_after - hwm_before) / 2**20,
        "omitted": statistics.median(omitted),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", default="10,10000")
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--chars", type=int, default=500)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = [measure(int(count), args.sessions, args.chars) for count in args.messages.split(",")]
    print("| messages | resume p50 ms | RSS per cold start MB | peak RSS growth MB | omitted |")
    print("|---:|---:|---:|---:|---:|")
    for row in results:
        print(
            f"| {row['messages']} | {row['resume_ms']:.1f} | {row['rss_per_session_mb']:.2f} "
            f"| {row['peak_growth_mb']:.2f} | {row['omitted']:.0f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
