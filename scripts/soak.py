"""
Soak the gateway with browser refreshes: against real daphne with a short reap grace, run
``connect -> session.create -> slash.exec /status -> disconnect`` cycles from a few
concurrent clients, then check that every detached session was reaped and every slash
worker ended.

    python scripts/soak.py [--cycles 1000] [--grace 1] [--concurrency 4] [--json out.json]

Exits non-zero when a slash worker or a detached session outlives ``grace + 2`` seconds,
when a cycle failed, or when a process outlived the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.support.live import ws_rpc  # noqa: E402
from tests.support.servers import Database, GatewayServer, descendants  # noqa: E402

#: Lines of the server log that count as a gateway error.
_LOG_ERROR = re.compile(r"\b(ERROR|CRITICAL)\b|Traceback|Exception inside application")
#: Seconds the run waits past the grace before it counts what is left.
SETTLE_S = 2.0
#: How often the sampler looks at the server's slash workers and RSS.
SAMPLE_INTERVAL_S = 0.05
#: Cycles run before the "RSS before" reading, so imports and caches are warm.
WARMUP_CYCLES = 10
MAX_ERRORS_KEPT = 20


class Sampler(threading.Thread):
    """Polls the server's slash workers and RSS in the background; keeps maxima."""

    def __init__(self, server: GatewayServer, interval: float = SAMPLE_INTERVAL_S):
        super().__init__(name="soak-sampler", daemon=True)
        self.server = server
        self.interval = interval
        self.max_alive = 0
        self.seen: set[int] = set()
        self.rss_peak = 0
        self.samples = 0
        self._halt = threading.Event()

    def sample(self) -> int:
        workers = self.server.slash_workers()
        self.seen |= workers
        self.max_alive = max(self.max_alive, len(workers))
        try:
            self.rss_peak = max(self.rss_peak, self.server.rss())
        except psutil.NoSuchProcess:
            pass
        self.samples += 1
        return len(workers)

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


class Cycles:
    """Runs refresh cycles from ``concurrency`` clients; records latencies and errors."""

    def __init__(self, url: str, token: str, concurrency: int):
        self.url = url
        self.token = token
        self.concurrency = concurrency
        self.done = 0
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.error_count = 0

    async def one(self) -> None:
        """A browser refresh: connect, create, run a slash command, drop the socket."""
        async with ws_rpc(self.url, self.token) as rpc:
            sid = (await rpc.call("session.create", {"title": "soak"}))["session_id"]
            output = await rpc.call("slash.exec", {"session_id": sid, "command": "/status"})
            if sid not in output["output"]:
                raise AssertionError(f"/status output does not name {sid}: {output!r}")

    async def run(self, count: int) -> None:
        remaining = iter(range(count))

        async def client() -> None:
            for _ in remaining:
                started = time.perf_counter()
                try:
                    await self.one()
                except Exception as exc:  # keep going: the report says what failed
                    self.error_count += 1
                    if len(self.errors) < MAX_ERRORS_KEPT:
                        self.errors.append(f"{type(exc).__name__}: {exc}")
                else:
                    self.latencies.append(time.perf_counter() - started)
                self.done += 1

        await asyncio.gather(*(client() for _ in range(self.concurrency)))


async def census(url: str, token: str) -> Counter:
    """Session statuses as ``session.list`` reports them, every page, from a fresh
    connection."""
    statuses: Counter = Counter()
    params: dict = {"limit": 200}
    async with ws_rpc(url, token) as rpc:
        while True:
            page = await rpc.call("session.list", params)
            statuses.update(row["status"] for row in page["sessions"])
            if not page.get("next_cursor"):
                return statuses
            params = {"limit": 200, "cursor": page["next_cursor"]}


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def run_soak(
    cycles: int = 1000,
    grace: float = 1.0,
    concurrency: int = 4,
    *,
    warmup: int = WARMUP_CYCLES,
) -> dict[str, Any]:
    """Run the soak against a fresh database and daphne; returns the report as a dict."""
    if cycles < 1 or concurrency < 1:
        raise ValueError("cycles and concurrency must be at least 1")
    warmup = min(warmup, cycles)
    report: dict[str, Any] = {"cycles": cycles, "grace_s": grace, "concurrency": concurrency}
    with tempfile.TemporaryDirectory(prefix="hermes-soak-") as tmp:
        database = Database(Path(tmp))
        token = database.token("soak")
        server = GatewayServer(database, env={"HERMES_TUI_WS_ORPHAN_REAP_GRACE_S": grace})
        with server:
            sampler = Sampler(server)
            sampler.start()
            runner = Cycles(server.url, token, concurrency)
            try:
                started = time.perf_counter()
                asyncio.run(runner.run(warmup))
                rss_before = server.rss()
                asyncio.run(runner.run(cycles - warmup))
                elapsed = time.perf_counter() - started
                # Every session is detached now; give the reaper its grace and a margin.
                time.sleep(grace + SETTLE_S)
            finally:
                sampler.stop()
            workers_end = sampler.sample()
            server_crashed = server.process.poll() is not None
            statuses = Counter() if server_crashed else asyncio.run(census(server.url, token))
            rss_after = 0 if server_crashed else server.rss()
            children = descendants(server.pid)
            log = server.log()
        # The server is stopped: nothing it started may still run.
        left = [proc.pid for proc in children if _alive(proc)]
        report.update(
            {
                "cycles_done": runner.done,
                "elapsed_s": round(elapsed, 2),
                "cycles_per_s": round(runner.done / elapsed, 1) if elapsed else 0.0,
                "errors": runner.error_count,
                "error_samples": runner.errors,
                "latency_p50_ms": _ms(runner.latencies, 0.50),
                "latency_p95_ms": _ms(runner.latencies, 0.95),
                "latency_max_ms": _ms(runner.latencies, 1.0),
                "slash_workers_alive_end": workers_end,
                "slash_workers_max_alive": sampler.max_alive,
                "slash_workers_seen": len(sampler.seen),
                "samples": sampler.samples,
                "rss_before_mb": _mb(rss_before),
                "rss_after_mb": _mb(rss_after),
                "rss_peak_mb": _mb(max(sampler.rss_peak, rss_before, rss_after)),
                "sessions_detached": statuses.get("detached", 0),
                "sessions_closed": statuses.get("closed", 0),
                "sessions_by_status": dict(statuses),
                "server_children_at_stop": len(children),
                "processes_left_after_stop": left,
                "server_crashed": server_crashed,
                "server_log_errors": [line for line in log.splitlines() if _LOG_ERROR.search(line)][
                    :MAX_ERRORS_KEPT
                ],
            }
        )
    report["ok"] = not failures(report)
    return report


def failures(report: dict[str, Any]) -> list[str]:
    """What the soak found wrong, in words; empty when it passed."""
    found = []
    if report["server_crashed"]:
        found.append("the server exited during the run")
    if report["slash_workers_alive_end"]:
        found.append(f"{report['slash_workers_alive_end']} slash workers alive at the end")
    if report["sessions_detached"]:
        found.append(f"{report['sessions_detached']} sessions left detached")
    if report["errors"]:
        found.append(f"{report['errors']} cycles failed")
    if report["processes_left_after_stop"]:
        found.append(f"processes left after stop: {report['processes_left_after_stop']}")
    return found


def _ms(values: list[float], quantile: float) -> float | None:
    if not values:
        return None
    if quantile >= 1.0:
        return round(max(values) * 1000, 1)
    if len(values) == 1:
        return round(values[0] * 1000, 1)
    return round(statistics.quantiles(values, n=100)[int(quantile * 100) - 1] * 1000, 1)


def _mb(value: int) -> float:
    return round(value / (1024 * 1024), 1)


def format_report(report: dict[str, Any]) -> str:
    rows = [
        ("cycles done", f"{report['cycles_done']} / {report['cycles']}"),
        ("grace / concurrency", f"{report['grace_s']} s / {report['concurrency']}"),
        ("elapsed", f"{report['elapsed_s']} s ({report['cycles_per_s']} cycles/s)"),
        (
            "cycle latency p50/p95/max",
            f"{report['latency_p50_ms']} / {report['latency_p95_ms']} / "
            f"{report['latency_max_ms']} ms",
        ),
        ("errors", str(report["errors"])),
        ("slash workers alive at end", str(report["slash_workers_alive_end"])),
        ("slash workers max alive", str(report["slash_workers_max_alive"])),
        ("slash workers seen (distinct)", str(report["slash_workers_seen"])),
        ("server RSS before (warm)", f"{report['rss_before_mb']} MB"),
        ("server RSS after", f"{report['rss_after_mb']} MB"),
        ("server RSS peak", f"{report['rss_peak_mb']} MB"),
        ("sessions detached", str(report["sessions_detached"])),
        ("sessions closed", str(report["sessions_closed"])),
        ("sessions by status", json.dumps(report["sessions_by_status"], sort_keys=True)),
        ("processes left after stop", str(len(report["processes_left_after_stop"]))),
        ("server log errors", str(len(report["server_log_errors"]))),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    lines += [f"  error: {text}" for text in report["error_samples"]]
    lines += [f"  log: {line}" for line in report["server_log_errors"]]
    problems = failures(report)
    lines.append("result: " + ("PASS" if not problems else "FAIL - " + "; ".join(problems)))
    return "\n".join(lines)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    parser.add_argument("--cycles", type=_positive_int, default=1000)
    parser.add_argument("--grace", type=_non_negative_float, default=1.0, help="reap grace, s")
    parser.add_argument("--concurrency", type=_positive_int, default=4)
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    report = run_soak(args.cycles, args.grace, args.concurrency)
    print(format_report(report))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
