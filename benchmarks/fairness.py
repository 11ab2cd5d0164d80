"""
Per-user fairness benchmark: what one account running at its rate limit costs another user.

    python benchmarks/fairness.py [--sockets 8] [--duration 5] [--rounds 3] [--pings 50]
                                  [--user-rate R] [--json out.json]

One daphne running the gateway with its default limits (RATE_LIMIT_PER_S per connection,
USER_RATE_LIMIT_PER_S per user, or ``--user-rate``) and, for the control phase, a second one
with the per-user limit off. A victim user sends ``gateway.ping`` ``--pings`` times a second
(one in flight) for ``--duration`` seconds while

- **quiet**: nothing else runs;
- **storm**: a second user, from a process of its own, runs a ``session.create`` /
  ``session.close`` loop on ``--sockets`` connections as fast as it is allowed (a 4029 is
  followed by its ``retry_after_s``);
- **storm, no per-user limit** (control): the same with ``USER_RATE_LIMIT_PER_S`` 0.

Quiet and storm alternate ``--rounds`` times on one server, so a slower minute of the machine
falls on both; each phase's latencies are pooled over its rounds. Printed: the victim's
p50/p99 and the p99 ratio to quiet, the server's CPU per second, and the storm's accepted
creates/s and 4029 answers (by ``data.limit``). See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import load  # noqa: E402
from tests.support.servers import Database, GatewayServer  # noqa: E402

#: Seconds the storm runs before the victim's window opens (and after it closes).
LEAD_S = 1.0


async def victim_pings(url: str, token: str, rate: float, duration: float) -> list[float]:
    """Latencies (ms) of ``gateway.ping`` sent ``rate`` times a second, one in flight."""
    client = await load.Client.open(url, token)
    latencies: list[float] = []
    try:
        interval = 1.0 / rate
        end = time.monotonic() + duration
        next_at = time.monotonic()
        while time.monotonic() < end:
            start = time.perf_counter()
            await client.call("gateway.ping")
            latencies.append((time.perf_counter() - start) * 1000)
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    finally:
        await client.close()
    return latencies


async def _allowed(client: load.Client, counts: Counter, method: str, params: Any = None) -> Any:
    """The result of ``method``, sent again after each 4029's ``retry_after_s``."""
    while True:
        message = await client.request(method, params)
        if "result" in message:
            return message["result"]
        error = message["error"]
        data = error.get("data") or {}
        if error["code"] != 4029:
            raise load.LoadError(f"{method} failed: {error!r}")
        counts[f"4029_{data.get('limit')}"] += 1
        await asyncio.sleep(data.get("retry_after_s", 0.01))


async def _storm_socket(url: str, token: str, end: float, counts: Counter) -> None:
    client = await load.Client.open(url, token)
    try:
        while time.monotonic() < end:
            created = await _allowed(client, counts, "session.create")
            counts["created"] += 1
            await _allowed(client, counts, "session.close", {"session_id": created["session_id"]})
    finally:
        await client.close()


def _storm_process(url: str, token: str, sockets: int, seconds: float, out: Any) -> None:
    async def main() -> Counter:
        counts: Counter = Counter()
        end = time.monotonic() + seconds
        await asyncio.gather(*(_storm_socket(url, token, end, counts) for _ in range(sockets)))
        return counts

    out.put(dict(asyncio.run(main())))


def run_phase(
    server: GatewayServer, victim: str, attacker: str | None, args: argparse.Namespace
) -> dict[str, Any]:
    """One window of victim pings, alongside a storm when ``attacker`` is given."""
    storm = None
    out: Any = multiprocessing.Queue()
    started, cpu = time.monotonic(), server.cpu_seconds()
    if attacker is not None:
        seconds = args.duration + 2 * LEAD_S
        storm = multiprocessing.Process(
            target=_storm_process, args=(server.url, attacker, args.sockets, seconds, out)
        )
        storm.start()
        time.sleep(LEAD_S)
    latencies = asyncio.run(victim_pings(server.url, victim, args.pings, args.duration))
    result: dict[str, Any] = {"latencies": latencies}
    if storm is not None:
        counts = out.get(timeout=60)
        storm.join(30)
        result["storm"] = counts
    result["seconds"] = time.monotonic() - started
    result["cpu_s"] = server.cpu_seconds() - cpu
    return result


def pooled(phases: list[dict[str, Any]]) -> dict[str, Any]:
    """One phase's rounds summed: latencies pooled, CPU and storm counts per second."""
    latencies = [ms for phase in phases for ms in phase["latencies"]]
    seconds = sum(phase["seconds"] for phase in phases)
    result: dict[str, Any] = {
        "rounds": len(phases),
        "pings": len(latencies),
        "p50_ms": round(load.percentile(latencies, 0.50), 2),
        "p99_ms": round(load.percentile(latencies, 0.99), 2),
        "server_cpu_ms_per_s": round(1000 * sum(p["cpu_s"] for p in phases) / seconds),
    }
    if "storm" in phases[0]:
        storm: Counter = sum((Counter(phase["storm"]) for phase in phases), Counter())
        result["storm"] = dict(storm)
        result["created_per_s"] = round(storm.get("created", 0) / seconds)
    return result


def run(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="hermes-fairness-") as directory:
        database = Database(Path(directory))
        victim, attacker = database.token("victim"), database.token("stormer")
        limited = {}
        if args.user_rate is not None:
            options = {"USER_RATE_LIMIT_PER_S": args.user_rate}
            limited = {"HERMES_GATEWAY_OPTIONS": json.dumps(options)}
        quiet, storm = [], []
        with GatewayServer(database, env=limited) as server:
            for _ in range(args.rounds):
                quiet.append(run_phase(server, victim, None, args))
                storm.append(run_phase(server, victim, attacker, args))
        results["quiet"], results["storm"] = pooled(quiet), pooled(storm)
        off = {"HERMES_GATEWAY_OPTIONS": json.dumps({"USER_RATE_LIMIT_PER_S": 0})}
        with GatewayServer(database, env=off) as server:
            control = run_phase(server, victim, attacker, args)
        results["storm, no per-user limit"] = pooled([control])
    return results


def report(results: dict[str, dict[str, Any]]) -> str:
    quiet = results["quiet"]["p99_ms"] or 1.0
    lines = [
        "| phase | rounds | victim p50 ms | victim p99 ms | p99 / quiet | server CPU ms/s"
        " | storm creates/s | storm 4029s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, figures in results.items():
        storm = figures.get("storm", {})
        refused = ", ".join(f"{k[5:]}: {v}" for k, v in sorted(storm.items()) if k[:5] == "4029_")
        lines.append(
            f"| {name} | {figures['rounds']} | {figures['p50_ms']} | {figures['p99_ms']} |"
            f" {figures['p99_ms'] / quiet:.2f} | {figures['server_cpu_ms_per_s']} |"
            f" {figures.get('created_per_s', '-')} | {refused or '-'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=8, help="the storming user's sockets")
    parser.add_argument("--duration", type=float, default=5.0, help="victim window, seconds")
    parser.add_argument("--rounds", type=int, default=3, help="quiet/storm pairs, alternating")
    parser.add_argument("--pings", type=float, default=50.0, help="victim pings per second")
    parser.add_argument(
        "--user-rate", type=float, help="USER_RATE_LIMIT_PER_S of the storm phase (default: its)"
    )
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args(argv)
    results = run(args)
    print(report(results))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
