"""
A throwaway PostgreSQL server for tests: Debian's ``postgresql`` binaries, ``initdb`` into a
temporary directory (as the unprivileged ``postgres`` user when run as root), listening on a
free loopback port and a Unix socket in that directory only, stopped and removed on exit.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from tests.support.servers import free_port, stop_process, wait_for_port

BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
#: Durability is not what tests measure: these make a run several times faster.
FAST = [
    *("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"),
    *("-c", "wal_level=minimal", "-c", "max_wal_senders=0"),
]


def binary(name: str) -> Path | None:
    """The newest installed PostgreSQL's ``name`` (initdb, postgres), if any."""
    for directory in BIN_DIRS:
        if (directory / name).is_file():
            return directory / name
    return None


class PostgresServer:
    """One PostgreSQL cluster; ``url(name)`` for a database, ``create_database`` makes one."""

    user = "hermes"

    def __init__(self) -> None:
        self.port = free_port()
        self.password = secrets.token_urlsafe(16)
        self.directory: Path | None = None
        self.process: subprocess.Popen | None = None

    def url(self, name: str = "postgres", **params: object) -> str:
        query = "&".join(f"{key}={value}" for key, value in params.items())
        base = f"postgres://{self.user}:{self.password}@127.0.0.1:{self.port}/{name}"
        return f"{base}?{query}" if query else base

    def _as_owner(self, command: list[str]) -> list[str]:
        """``command`` run as the ``postgres`` user when we are root (initdb refuses root)."""
        if os.geteuid() != 0:
            return command
        return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", *command]

    def start(self) -> PostgresServer:
        initdb, postgres = binary("initdb"), binary("postgres")
        if initdb is None or postgres is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        self.directory = Path(tempfile.mkdtemp(prefix="hermes-pg-"))
        data = self.directory / "data"
        pwfile = self.directory / "pwfile"
        pwfile.write_text(self.password)
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.directory, owner.pw_uid, owner.pw_gid)
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        subprocess.run(
            self._as_owner(
                [
                    str(initdb),
                    "-D",
                    str(data),
                    "-U",
                    self.user,
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        pwfile.unlink()
        self.process = subprocess.Popen(
            self._as_owner(
                [
                    str(postgres),
                    "-D",
                    str(data),
                    "-p",
                    str(self.port),
                    "-h",
                    "127.0.0.1",
                    "-k",
                    str(self.directory),
                    "-c",
                    "max_connections=200",
                    *FAST,
                ]
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, timeout=30, process=self.process)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        """The port opens before the server takes logins: wait until one succeeds."""
        last: Exception | None = None
        for _ in range(200):
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return
            except psycopg.OperationalError as exc:
                last = exc
                if self.process is not None and self.process.poll() is not None:
                    break
                time.sleep(0.05)
        raise RuntimeError(f"PostgreSQL did not accept logins: {last}")

    def execute(self, sql: str, params: tuple[object, ...] = (), database: str = "postgres"):
        """Run one statement (autocommit: CREATE DATABASE needs it) and return its rows."""
        with psycopg.connect(self.url(database), autocommit=True) as conn:
            cursor = conn.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

    def connections(self, database: str) -> int:
        """How many server connections (backends) are open to ``database`` now."""
        sql = "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
        return self.execute(sql, (database,))[0][0]

    def create_database(self, name: str, template: str = "template1") -> str:
        """A new database ``name`` (copied from ``template``); returns its URL."""
        self.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return self.url(name)

    def stop(self) -> None:
        if self.process is not None:
            # SIGTERM is PostgreSQL's "smart" shutdown; SIGINT ends sessions at once.
            self.process.send_signal(signal.SIGINT)
            stop_process(self.process, timeout=20)
            self.process = None
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
