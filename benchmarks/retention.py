"""
Retention benchmark: how long ``manage.py gateway_cleanup`` takes on a large table.

    python benchmarks/retention.py [--sessions 100000] [--messages 10] [--users 100]

A fresh migrated SQLite file gets ``--sessions`` closed sessions spread over ``--users`` users
(60 days old, so all are past a 30-day retention) with ``--messages`` transcript rows each,
bulk-inserted directly; then ``gateway_cleanup --days 30`` runs as cron would (its own
process, quota off) and its wall time (Django's start included), summary line and peak RSS
(from GNU time) are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.support.servers import PYTHON, Database  # noqa: E402

#: GNU time (Debian package "time"), for the command's peak RSS.
TIME = "/usr/bin/time"


def fill(db_path: Path, sessions: int, messages: int, users: int) -> None:
    """Insert the users, their closed sessions a minute of activity apart, and transcripts."""
    base = datetime.now(UTC) - timedelta(days=60)
    with sqlite3.connect(db_path) as conn:
        conn.executemany(
            "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name,"
            " email, is_staff, is_active, date_joined) VALUES ('!', 0, ?, '', '', '', 0, 1, ?)",
            [(f"user{u}", base.isoformat()) for u in range(users)],
        )
        ids = [row[0] for row in conn.execute("SELECT id FROM auth_user ORDER BY id")]
        rows, transcript = [], []
        for i in range(sessions):
            at = (base - timedelta(minutes=i)).strftime("%Y-%m-%d %H:%M:%S.%f")
            sid = f"{i:032x}"
            user_id = ids[i % len(ids)]
            rows.append((sid, user_id, "t", "closed", "closed", 0, "", "", 0, at, at, at, messages))
            transcript.extend(
                (sid, "user", f"message {m}", "", "{}", 0, at) for m in range(messages)
            )
        conn.executemany(
            "INSERT INTO gateway_app_gatewaysession (id, user_id, title, status, close_reason,"
            " attached, host_worker, host_channel, last_seq, created_at, last_activity,"
            " closed_at, message_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.executemany(
            "INSERT INTO gateway_app_message (session_id, role, content, turn_id, data,"
            " interrupted, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            transcript,
        )
        conn.execute("ANALYZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=10, help="per session")
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        database = Database(Path(tmp))
        fill(database.path, args.sessions, args.messages, args.users)
        options = {"MAX_STORED_SESSIONS_PER_USER": 0}
        env = {**database.env, "HERMES_GATEWAY_OPTIONS": json.dumps(options)}
        # GNU time reports the command's own peak: the children's ru_maxrss would count the
        # pages a fork copies from this process (the rows built above) before exec.
        stats = Path(tmp) / "time.txt"
        start = time.perf_counter()
        done = subprocess.run(
            [TIME, "-f", "%M", "-o", stats, PYTHON, "manage.py", "gateway_cleanup", "--days", "30"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        seconds = time.perf_counter() - start
        peak_mib = int(stats.read_text().split()[-1]) / 1024
        with sqlite3.connect(database.path) as conn:
            (left,) = conn.execute("SELECT COUNT(*) FROM gateway_app_message").fetchone()
    figures = {
        "sessions": args.sessions,
        "messages": args.sessions * args.messages,
        "seconds": round(seconds, 2),
        "peak_rss_mib": round(peak_mib, 1),
        "messages_left": left,
        "summary": done.stdout.strip(),
    }
    print(
        f"{figures['sessions']} sessions / {figures['messages']} messages:"
        f" {figures['seconds']} s, peak RSS {figures['peak_rss_mib']} MiB,"
        f" {left} messages left\n{figures['summary']}"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + os.linesep)


if __name__ == "__main__":
    main()
