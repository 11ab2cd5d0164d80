#!/usr/bin/env python
"""
Run the gateway as N daphne workers sharing one port and one Redis.

The launcher opens the listening socket itself and hands it to every worker with
``daphne --fd`` (the kernel spreads connections over the workers, no balancer needed),
starts a local redis-server when ``--redis-url`` is not given (or points at a local port
where nothing listens) requiring a password (generated unless the URL has one) that the
workers get in their ``REDIS_URL``, migrates the database once, restarts a worker that dies
(after a growing pause while it keeps dying), and stops everything on SIGINT/SIGTERM, or
when a step of the start fails. SIGHUP (or ``--rolling-restart --pidfile F`` from another
shell) restarts the workers one at a time: a replacement starts on the shared socket first,
then the old worker drains (SIGTERM: its clients reconnect to the others, close 1012).

``--metrics-port BASE`` gives worker i a scrape address of its own, BASE+i on
``--metrics-host``: a socket the launcher opens too, so a worker's replacement serves on it
as soon as it starts and the port is never closed or bound twice. ``--proxy-headers`` (only
behind a proxy that sets ``X-Forwarded-For``) has the workers take each client's address
from it.

    python scripts/deploy.py --workers 2 --port 8000 --pidfile deploy.pid
    python scripts/deploy.py --rolling-restart --pidfile deploy.pid
    python scripts/deploy.py --workers 2 --proxy-headers --metrics-port 9100
"""

from __future__ import annotations

import argparse
import os
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote, unquote, urlparse

REPO = Path(__file__).resolve().parents[1]

#: A dead worker is restarted after RESTART_DELAY_S, doubled on each death in a row up to
#: RESTART_DELAY_MAX_S; a worker that stayed up STABLE_AFTER_S starts again from the first.
RESTART_DELAY_S = 0.5
RESTART_DELAY_MAX_S = 30.0
STABLE_AFTER_S = 60.0
POLL_S = 0.1
#: A stopping worker drains (DRAIN_TIMEOUT_S for its turns, 10 s by default) before it exits;
#: past this it is killed.
STOP_TIMEOUT_S = 30.0
#: How long a replacement worker may take to start serving before the old one drains anyway.
READY_TIMEOUT_S = 30.0


def log(message: str) -> None:
    print(f"deploy: {message}", file=sys.stderr, flush=True)


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def start_redis(url: str) -> tuple[subprocess.Popen | None, str]:
    """
    Start redis-server for a local URL where nothing listens yet, requiring a password:
    the URL's own, or a generated one added to the URL the workers get. Returns the process
    (None if not needed) and that URL. The password goes to redis-server on stdin, not argv.
    """
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 6379
    if reachable(host, port):
        return None, url
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"deploy: Redis at {redact(url)} is not reachable")
    if parsed.scheme != "redis":
        raise SystemExit(f"deploy: start your own Redis for {redact(url)} (TLS, sockets)")
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("deploy: redis-server not found (apt-get install redis-server)")
    password = unquote(parsed.password or "") or secrets.token_urlsafe(32)
    username = unquote(parsed.username or "") or "default"
    if username == "default":
        config = f"requirepass {_quoted(password)}\n"
    else:
        config = f"user default off\nuser {_quoted(username)} on {_quoted('>' + password)}"
        config += " ~* &* +@all\n"
    user = "" if username == "default" else quote(username, safe="")
    netloc = f"{user}:{quote(password, safe='')}@{parsed.netloc.rpartition('@')[2]}"
    process = subprocess.Popen(
        [binary, "-", "--port", str(port), "--bind", host, "--save", "", "--appendonly", "no"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    process.stdin.write(config.encode())
    process.stdin.close()
    for _ in range(100):
        if reachable(host, port):
            log(f"started redis-server on {host}:{port} (pid {process.pid}), password required")
            return process, parsed._replace(netloc=netloc).geturl()
        time.sleep(0.05)
    process.kill()
    process.wait()
    raise SystemExit("deploy: redis-server did not start")


def _quoted(value: str) -> str:
    """A redis.conf string argument (spaces and quotes in a password are allowed)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def redact(url: str) -> str:
    """``url`` without its password, for the log."""
    parsed = urlparse(url)
    if parsed.password is None:
        return url
    user = parsed.username or ""
    return parsed._replace(netloc=f"{user}:***@{parsed.netloc.rpartition('@')[2]}").geturl()


def listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        raise SystemExit(f"deploy: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def worker_command(
    listen_fd: int, *, metrics_fd: int | None = None, proxy_headers: bool = False
) -> list[str]:
    """
    One worker's command line: daphne on the shared socket ``listen_fd``, plus its own
    metrics socket ``metrics_fd`` (an IPv4 one: daphne's ``fd:`` endpoint string adopts it as
    AF_INET), taking the client's address from ``X-Forwarded-For`` with ``proxy_headers``.
    """
    command = [sys.executable, "-m", "hermes_site.serving", "--fd", str(listen_fd)]
    if metrics_fd is not None:
        command += ["--endpoint", f"fd:fileno={metrics_fd}"]
    if proxy_headers:
        command.append("--proxy-headers")
    return [*command, "hermes_site.asgi:application"]


def metrics_ports(base: int, workers: int) -> list[int]:
    """The scrape port of each worker: ``base`` + its index."""
    return [base + index for index in range(workers)]


def manage(*args: str, env: dict[str, str]) -> None:
    """Run one ``manage.py`` command; its failure stops the launch."""
    try:
        subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env, check=True)
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"deploy: manage.py {args[0]} failed with {exc.returncode}") from None


class Backoff:
    """One worker's restart delay: doubled on each quick death, reset by a long enough run."""

    def __init__(
        self,
        initial: float = RESTART_DELAY_S,
        cap: float = RESTART_DELAY_MAX_S,
        reset_after: float = STABLE_AFTER_S,
    ):
        self.initial = initial
        self.cap = cap
        self.reset_after = reset_after
        self.delay = initial

    def next(self, uptime: float) -> float:
        """The pause before restarting a worker that died after ``uptime`` seconds."""
        if uptime >= self.reset_after:
            self.delay = self.initial
        delay = self.delay
        self.delay = min(self.delay * 2, self.cap)
        return delay


class Supervisor:
    """Keeps N daphne workers running on one inherited socket (and, with metrics, worker i
    on its own ``metrics[i]`` too)."""

    def __init__(
        self,
        sock: socket.socket,
        workers: int,
        env: dict[str, str],
        *,
        metrics: list[socket.socket] | None = None,
        proxy_headers: bool = False,
    ):
        self.sock = sock
        self.count = workers
        self.env = env
        self.metrics = metrics or []
        self.proxy_headers = proxy_headers
        self.workers: dict[int, subprocess.Popen] = {}
        self.started: dict[int, float] = {}
        self.backoff: dict[int, Backoff] = {}
        #: Read ends of the pipes starting workers say "serving" on.
        self.ready: dict[int, int] = {}
        #: Dead workers waiting for their restart: index -> monotonic time to restart at.
        self.restart_at: dict[int, float] = {}
        self.stopping = False
        self.restart_requested = False

    def request_restart(self, *_: object) -> None:
        """SIGHUP: a rolling restart, run by the supervising loop."""
        self.restart_requested = True

    def spawn(self, index: int) -> None:
        ready_read, ready_write = os.pipe()
        env = {
            **self.env,
            "HERMES_WORKER_NAME": f"worker-{index}",
            "HERMES_READY_FD": str(ready_write),
        }
        # A replacement gets the same metrics socket as the worker it replaces: both accept
        # on it until the old one drains (it stops listening on every endpoint at once).
        metrics_fd = self.metrics[index].fileno() if self.metrics else None
        command = worker_command(
            self.sock.fileno(), metrics_fd=metrics_fd, proxy_headers=self.proxy_headers
        )
        fds = (self.sock.fileno(), ready_write, *([metrics_fd] if metrics_fd is not None else []))
        try:
            self.workers[index] = subprocess.Popen(command, cwd=REPO, env=env, pass_fds=fds)
        finally:
            os.close(ready_write)
        self.ready[index] = ready_read
        self.started[index] = time.monotonic()
        log(f"worker-{index} started (pid {self.workers[index].pid})")

    def wait_ready(self, index: int, timeout: float = READY_TIMEOUT_S) -> bool:
        """Wait until the worker serves (it writes to its ready pipe) or exits."""
        fd = self.ready.pop(index, None)
        if fd is None:
            return False
        try:
            readable, _, _ = select.select([fd], [], [], timeout)
            return bool(readable) and os.read(fd, 1) == b"1"
        finally:
            os.close(fd)

    def rolling_restart(self) -> None:
        """Replace the workers one at a time: the new one serves before the old one drains."""
        log("rolling restart")
        for index in sorted(self.workers):
            if self.stopping:
                return
            old = self.workers[index]
            self.spawn(index)
            if not self.wait_ready(index):
                log(f"worker-{index}: the replacement is not serving; draining the old anyway")
            if old.poll() is None:
                old.terminate()
                _wait_or_kill(old)
            log(
                f"worker-{index} replaced (pid {old.pid} exited with {old.returncode},"
                f" now pid {self.workers[index].pid})"
            )
        log("rolling restart done")

    def run(self) -> None:
        for index in range(self.count):
            self.spawn(index)
        while not self.stopping:
            time.sleep(POLL_S)
            if self.restart_requested:
                self.restart_requested = False
                self.rolling_restart()
            now = time.monotonic()
            for index, process in list(self.workers.items()):
                if self.stopping:
                    break
                if index in self.restart_at:
                    if now >= self.restart_at[index]:
                        del self.restart_at[index]
                        self.spawn(index)
                elif process.poll() is not None:
                    uptime = now - self.started[index]
                    delay = self.backoff.setdefault(index, Backoff()).next(uptime)
                    self.restart_at[index] = now + delay
                    log(
                        f"worker-{index} exited with {process.returncode} after {uptime:.1f}s;"
                        f" restarting in {delay:g}s"
                    )

    def stop(self, *_: object) -> None:
        self.stopping = True
        for process in self.workers.values():
            if process.poll() is None:
                process.terminate()
        for process in self.workers.values():
            _wait_or_kill(process)
        for fd in self.ready.values():
            os.close(fd)
        self.ready.clear()


def _wait_or_kill(process: subprocess.Popen, timeout: float = STOP_TIMEOUT_S) -> None:
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def send_rolling_restart(pidfile: str) -> None:
    """``--rolling-restart``: SIGHUP to the launcher whose pid is in ``pidfile``."""
    try:
        pid = int(Path(pidfile).read_text().strip())
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"deploy: no launcher to restart ({pidfile}: {exc})") from None
    log(f"asked the launcher (pid {pid}) for a rolling restart")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        help="started locally when nothing listens there (default: %(default)s)",
    )
    parser.add_argument(
        "--proxy-headers",
        action="store_true",
        help="take each client's address from X-Forwarded-For (and the scheme from"
        " X-Forwarded-Proto): only behind a proxy that sets them, on a port nothing else reaches",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        metavar="BASE",
        help="worker i also serves (for /metrics) on BASE+i of --metrics-host",
    )
    parser.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        help="the IPv4 address the metrics ports listen on (default: %(default)s)",
    )
    parser.add_argument("--pidfile", help="the launcher writes its pid here (removed at exit)")
    parser.add_argument(
        "--rolling-restart",
        action="store_true",
        help="restart the workers of the launcher in --pidfile one at a time, then return",
    )
    args = parser.parse_args()
    if args.metrics_port is not None:
        check_metrics_ports(parser, args)
    if args.rolling_restart:
        if not args.pidfile:
            parser.error("--rolling-restart needs --pidfile")
        send_rolling_restart(args.pidfile)
        return

    # Until the workers run, a signal unwinds through the finally below like any failure.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGINT, _exit_on_signal)
    redis_process: subprocess.Popen | None = None
    sock: socket.socket | None = None
    metrics: list[socket.socket] = []
    supervisor: Supervisor | None = None
    try:
        redis_process, redis_url = start_redis(args.redis_url)
        env = {**os.environ, "REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1"}
        manage("migrate", "--noinput", "-v0", env=env)
        manage("gateway_admin", env=env)
        sock = listen(args.host, args.port)
        if args.metrics_port is not None:
            for port in metrics_ports(args.metrics_port, args.workers):
                metrics.append(listen(args.metrics_host, port))
        supervisor = Supervisor(
            sock, args.workers, env, metrics=metrics, proxy_headers=args.proxy_headers
        )
        signal.signal(signal.SIGTERM, supervisor.stop)
        signal.signal(signal.SIGINT, supervisor.stop)
        signal.signal(signal.SIGHUP, supervisor.request_restart)
        if args.pidfile:
            Path(args.pidfile).write_text(f"{os.getpid()}\n")
        log(
            f"{args.workers} workers on http://{args.host}:{args.port}/"
            f" with Redis {redact(redis_url)}"
            + (", client addresses from X-Forwarded-For" if args.proxy_headers else "")
        )
        for index, metrics_sock in enumerate(metrics):
            target = f"{args.metrics_host}:{metrics_sock.getsockname()[1]}"
            log(f"worker-{index} metrics on http://{target}/metrics")
        supervisor.run()
    finally:
        if supervisor is not None:
            supervisor.stop()
        for metrics_sock in metrics:
            metrics_sock.close()
        if sock is not None:
            sock.close()
        if args.pidfile and sock is not None:
            Path(args.pidfile).unlink(missing_ok=True)
        if redis_process is not None:
            redis_process.terminate()
            try:
                redis_process.wait(10)
            except subprocess.TimeoutExpired:
                redis_process.kill()
                redis_process.wait()
        log("stopped")


def check_metrics_ports(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse metrics ports out of range, on the shared port, or on an IPv6 address."""
    ports = metrics_ports(args.metrics_port, args.workers)
    if ports[0] < 1 or ports[-1] > 65535:
        parser.error(f"--metrics-port: {ports[0]}..{ports[-1]} is not a port range")
    if args.port in ports:
        parser.error(f"--metrics-port: {ports[0]}..{ports[-1]} includes --port {args.port}")
    if ":" in args.metrics_host:
        parser.error("--metrics-host: an IPv4 address (daphne adopts the socket as AF_INET)")


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    main()
