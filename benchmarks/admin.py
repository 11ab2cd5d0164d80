"""
Admin-at-scale benchmark: the session changelist and a transcript page, by table size.

    python benchmarks/admin.py [--sizes 100,100000] [--messages-per-session 10]
                               [--renders 30] [--json out.json]

For each size, a fresh migrated SQLite file gets that many sessions of 20 users (1 % live,
the rest closed) and ``--messages-per-session`` times as many messages, half of them in one
long session (the newest) and the rest spread over the others, all bulk-inserted directly.
The Django test client, logged in as a superuser, then renders each page ``--renders``
times: the changelist, the changelist filtered to ``status=closed``, a title search that
nine rows in ten match (both fill a page at either size), the long session's change form
(the newest transcript page) and an older transcript page (keyset, from the middle of the
transcript). Printed: p50 wall and CPU ms per render, and the ratio of the largest size to
the smallest. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
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

PAGES = ("changelist", "status=closed", "search", "change form", "older transcript")
USERS = 20
LONG_ID = "f" * 32  # the long session: sorts last by id, and is the newest by activity


def setup_django(db_path: Path) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "hermes_site.test_settings"
    os.environ["HERMES_DB_PATH"] = str(db_path)
    import django
    from django.conf import settings

    django.setup()
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]  # the test client's host


def use_database(db_path: Path) -> None:
    """Point the default connection at a fresh file and migrate it."""
    from django.core.management import call_command
    from django.db import connections

    connection = connections["default"]
    connection.close()
    connection.settings_dict["NAME"] = str(db_path)
    call_command("migrate", verbosity=0)


def fill(db_path: Path, sessions: int, messages: int) -> int:
    """Insert the rows; returns the id of a message in the middle of the long session."""
    from django.contrib.auth import get_user_model

    user_ids = [get_user_model().objects.create_user(f"user{i}").pk for i in range(USERS)]
    long_messages = messages // 2
    per_other = (messages - long_messages) // max(sessions - 1, 1)
    base = datetime(2025, 1, 1, tzinfo=UTC)
    counts = {}
    session_rows = []
    for i in range(sessions):
        sid = LONG_ID if i == sessions - 1 else f"{i:032x}"
        counts[sid] = long_messages if sid == LONG_ID else per_other
        at = base + timedelta(minutes=10 * i)
        created, active = (t.strftime("%Y-%m-%d %H:%M:%S.%f") for t in (at, at + timedelta(0, 300)))
        live = i % 100 == 0 or sid == LONG_ID
        status, reason, closed = ("live", "", None) if live else ("closed", "closed", active)
        title = f"session {i} {'needle' if i % 10 == 0 else 'hay'}"
        session_rows.append(
            (sid, user_ids[i % USERS], title, status, reason, 0, "w1", "", None, 0, created)
            + (active, closed, counts[sid])
        )

    def message_rows():
        for sid, count in counts.items():
            for n in range(count):
                yield (sid, "user" if n % 2 == 0 else "assistant", f"message {n} of {sid[:8]}")

    with sqlite3.connect(db_path) as conn:
        # A throwaway file: no journal, and the message indexes built once after the rows.
        conn.execute("PRAGMA synchronous = OFF")
        indexes = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index'"
            " AND tbl_name = 'gateway_app_message' AND sql IS NOT NULL"
        ).fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        conn.executemany(
            "INSERT INTO gateway_app_gatewaysession (id, user_id, title, status, close_reason,"
            " attached, host_worker, host_channel, slash_pid, last_seq, created_at,"
            " last_activity, closed_at, message_count)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            session_rows,
        )
        conn.executemany(
            "INSERT INTO gateway_app_message (session_id, role, content, turn_id, data,"
            " interrupted, created_at) VALUES (?, ?, ?, '', '{}', 0, '2025-01-01 00:00:00')",
            message_rows(),
        )
        for _, sql in indexes:
            conn.execute(sql)
        conn.execute("ANALYZE")
        (middle,) = conn.execute(
            "SELECT id FROM gateway_app_message WHERE session_id = ? ORDER BY id LIMIT 1 OFFSET ?",
            (LONG_ID, long_messages // 2),
        ).fetchone()
    return middle


def p50_ms(client: Any, url: str, renders: int) -> tuple[float, float]:
    """The median wall and CPU ms of a render: SQLite runs in this process, so CPU time is
    the render's own work, steady on a machine shared with other jobs."""
    response = client.get(url)  # warm: templates, caches
    assert response.status_code == 200, (url, response.status_code)
    wall, cpu = [], []
    for _ in range(renders):
        start, start_cpu = time.perf_counter(), time.process_time()
        client.get(url)
        cpu.append((time.process_time() - start_cpu) * 1000)
        wall.append((time.perf_counter() - start) * 1000)
    return statistics.median(wall), statistics.median(cpu)


def measure(tmp: Path, sessions: int, per_session: int, renders: int) -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.urls import reverse

    db_path = tmp / f"admin-{sessions}.sqlite3"
    use_database(db_path)
    start = time.perf_counter()
    middle = fill(db_path, sessions, sessions * per_session)
    fill_s = time.perf_counter() - start
    admin_user = get_user_model().objects.create_superuser("admin", "admin@example.com", "x")
    client = Client()
    client.force_login(admin_user)
    changelist = reverse("admin:gateway_app_gatewaysession_changelist")
    transcript = reverse("admin:gateway_app_gatewaysession_transcript", args=[LONG_ID])
    urls = {
        "changelist": changelist,
        "status=closed": f"{changelist}?status__exact=closed",
        "search": f"{changelist}?q=hay",
        "change form": reverse("admin:gateway_app_gatewaysession_change", args=[LONG_ID]),
        "older transcript": f"{transcript}?before={middle}",
    }
    figures: dict[str, Any] = {
        "sessions": sessions,
        "messages": sessions * per_session,
        "fill_s": round(fill_s, 1),
    }
    for page, url in urls.items():
        figures[page], figures[f"{page} cpu"] = p50_ms(client, url, renders)
    return figures


def print_table(results: list[dict[str, Any]], suffix: str, label: str) -> None:
    print(f"\n{label}\n")
    print("| sessions | messages | " + " | ".join(PAGES) + " |")
    print("|---:|---:|" + "---:|" * len(PAGES))
    for row in results:
        cells = " | ".join(f"{row[p + suffix]:.2f}" for p in PAGES)
        print(f"| {row['sessions']} | {row['messages']} | {cells} |")
    if len(results) > 1:
        first, last = results[0], results[-1]
        ratios = " | ".join(f"{last[p + suffix] / first[p + suffix]:.2f}x" for p in PAGES)
        print(f"| ratio | {last['sessions']}/{first['sessions']} | {ratios} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,100000", help="session counts, comma-separated")
    parser.add_argument("--messages-per-session", type=int, default=10)
    parser.add_argument("--renders", type=int, default=30)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        setup_django(tmp / "unused.sqlite3")
        sizes = [int(size) for size in args.sizes.split(",")]
        results = [measure(tmp, n, args.messages_per_session, args.renders) for n in sizes]
    print_table(results, "", "p50 wall ms per render:")
    print_table(results, " cpu", "p50 CPU ms per render (the process's own work):")
    for row in results:
        print(f"fill {row['sessions']} sessions: {row['fill_s']} s", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
