"""
Real servers for live tests, the soak script and the benchmarks: daphne (or uvicorn) running
the gateway as a subprocess on a free loopback port, and redis-server. Each is a context
manager that stops its process (and checks it is gone) on exit.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0, process: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited early with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def stop_process(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL; always reaps the child."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def slash_worker_pids(parent_pid: int | None = None) -> set[int]:
    """Pids of live slash-worker processes (children of ``parent_pid`` when given)."""
    if parent_pid is not None:
        procs = descendants(parent_pid)
    else:
        procs = list(psutil.process_iter())
    found = set()
    for proc in procs:
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if "gateway_app.slash.worker" in " ".join(proc.cmdline()):
                found.add(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


class Database:
    """A migrated database with users and tokens, shared by the server processes: a SQLite
    file in ``directory``, or the database ``url`` names (``DATABASE_URL``; ``migrate`` off
    for one copied from a migrated template). The secret key file is in ``directory``."""

    def __init__(self, directory: Path, url: str | None = None, *, migrate: bool = True):
        self.path = directory / "gateway.sqlite3"
        self.url = url
        self.env = base_env(self.path, **({"DATABASE_URL": url} if url else {}))
        if migrate and url is None:
            copy_sqlite(migrated_template(), self.path)
        elif migrate:
            self._manage("migrate", "-v0")

    def _manage(self, *args: str) -> str:
        result = subprocess.run(
            [PYTHON, "manage.py", *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        return result.stdout

    def token(self, username: str) -> str:
        """Mint a token (creating the user on demand) through the real command."""
        out = self._manage("gateway_token", username, "--create-user")
        return out.strip().splitlines()[-1]

    def create_superuser(self, username: str, password: str) -> None:
        env = {**self.env, "DJANGO_SUPERUSER_PASSWORD": password}
        subprocess.run(
            [
                PYTHON,
                "manage.py",
                "createsuperuser",
                "--noinput",
                "--username",
                username,
                "--email",
                f"{username}@example.com",
            ],
            cwd=REPO,
            env=env,
            check=True,
            capture_output=True,
            timeout=60,
        )


_template: Path | None = None


def migrated_template() -> Path:
    """A SQLite file migrated once per process: copying it is what a new database costs,
    instead of a ``manage.py migrate`` each."""
    global _template
    if _template is None:
        directory = Path(tempfile.mkdtemp(prefix="hermes-db-template-"))
        atexit.register(shutil.rmtree, directory, True)
        path = directory / "gateway.sqlite3"
        subprocess.run(
            [PYTHON, "manage.py", "migrate", "-v0"],
            cwd=REPO,
            env=base_env(path),
            capture_output=True,
            check=True,
            timeout=120,
        )
        _template = path
    return _template


def copy_sqlite(source: Path, target: Path) -> None:
    """Copy a SQLite database through its backup API (whatever is still in its WAL too)."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()


def base_env(db_path: Path, **extra: Any) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HERMES_", "DJANGO_", "REDIS_URL", "OPENAI_", "DATABASE_URL"))
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "hermes_site.settings",
            "HERMES_DB_PATH": str(db_path),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update({key: str(value) for key, value in extra.items()})
    return env


class GatewayServer:
    """The gateway under a real ASGI server (``daphne`` or ``uvicorn``) on a free port."""

    def __init__(
        self,
        database: Database,
        *,
        server: str = "daphne",
        app: str = "hermes_site.asgi:application",
        env: dict[str, Any] | None = None,
        port: int | None = None,
        log_path: Path | None = None,
        daphne_args: tuple[str, ...] = (),
    ):
        self.database = database
        self.server = server
        self.app = app
        self.daphne_args = list(daphne_args)
        self.port = port or free_port()
        self.env = {**database.env, **{k: str(v) for k, v in (env or {}).items()}}
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self._log_file = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/ws"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        if self.server == "daphne":
            return [
                PYTHON,
                "-m",
                "hermes_site.serving",
                "-b",
                "127.0.0.1",
                "-p",
                str(self.port),
                *self.daphne_args,
                self.app,
            ]
        if self.server == "uvicorn":
            return [
                PYTHON,
                "-m",
                "uvicorn",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                "--ws",
                "websockets",
                self.app,
            ]
        raise ValueError(f"unknown server {self.server!r}")

    def start(self) -> GatewayServer:
        if self.log_path is None:
            self._log_file = tempfile.TemporaryFile()
        else:
            self._log_file = open(self.log_path, "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            self.command(),
            cwd=REPO,
            env=self.env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, process=self.process)
        return self

    def log(self) -> str:
        if self._log_file is None:
            return ""
        self._log_file.flush()
        self._log_file.seek(0)
        data = self._log_file.read().decode("utf-8", "replace")
        self._log_file.seek(0, os.SEEK_END)
        return data

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def rss(self) -> int:
        return psutil.Process(self.pid).memory_info().rss

    def cpu_seconds(self) -> float:
        """User plus system CPU time the server process has used so far (all threads)."""
        times = psutil.Process(self.pid).cpu_times()
        return times.user + times.system

    def slash_workers(self) -> set[int]:
        return slash_worker_pids(self.pid)

    def kill(self) -> None:
        """SIGKILL, as a crash: no shutdown code runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None:
            children = descendants(self.process.pid)
            stop_process(self.process)
            # Slash workers exit on stdin EOF once their parent is gone; make sure.
            gone, alive = psutil.wait_procs(children, timeout=5)
            for proc in alive:
                proc.kill()
            psutil.wait_procs(alive, timeout=5)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> GatewayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RedisServer:
    """A throwaway redis-server on a free loopback port (no persistence), optionally
    requiring ``password`` (then in ``url``)."""

    def __init__(self, port: int | None = None, password: str = ""):
        self.port = port or free_port()
        self.password = password
        self.process: subprocess.Popen | None = None
        self.binary = shutil.which("redis-server") or "/usr/bin/redis-server"

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
                *(["--requirepass", self.password] if self.password else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, process=self.process)
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
