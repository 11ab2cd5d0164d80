"""
Cross-worker vs same-worker round-trip latency of two daphne workers sharing one Redis.

    python benchmarks/multiworker.py [--samples 300] [--prompt-samples 50] [--json out.json]

Starts a throwaway redis-server and two real daphne workers, A and B, on one SQLite database
(``tests/support/servers.py``), creates the sessions on A, then measures in the same run, with
same-worker and cross-worker samples interleaved one by one:

- ``gateway.ping``: a control with no session (both sockets do purely local work);
- ``session.list``: on A vs on B. Not forwarded: beside other workers each one reads the
  user's rows from the database; on B the rows of sessions hosted on A cost one Redis
  ``EXISTS`` (host alive) per list;
- ``session.resume`` of a session hosted on A: from a socket on A vs on B (B forwards the call
  to A's host channel through Redis and relays A's reply);
- ``slash.exec /status`` in A's slash worker: from a socket on A vs on B (forwarded);
- ``prompt.submit`` -> first ``message.delta`` (and -> ``message.complete``): a session hosted
  on A driven from a socket on A vs from a socket on B that resumed it (the submit is
  forwarded to A; the events reach B through the Redis group).

Prints one table (p50/p99 in ms, cross/same ratios); see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.load import TIMEOUT, Client, LoadError, percentile  # noqa: E402
from tests.support.procs import running  # noqa: E402
from tests.support.servers import (  # noqa: E402
    Database,
    GatewayServer,
    RedisServer,
    descendants,
    slash_worker_pids,
)

USER = "bench-multiworker"
#: The echo agent streams this back word by word; the first word is flushed at once.
PROMPT = "alpha beta gamma delta"
#: JSON-RPC error code of prompt.submit while the previous turn is still finishing.
SESSION_BUSY = 4009

#: What "same" and "cross" mean for each row (printed under the table, kept in --json).
NOTES = {
    "gateway.ping": "control: no session; both sockets are answered by their own worker",
    "session.list": (
        "not forwarded: each worker reads the rows from the database; on B the rows hosted "
        "on A add one Redis EXISTS (host alive) per list"
    ),
    "session.resume": "forwarded B -> A host channel (host.call/host.reply through Redis)",
    "slash.exec /status": "forwarded B -> A; runs in A's slash-worker subprocess",
    "prompt -> first delta": (
        "submit forwarded B -> A; events reach B through the Redis group (on A too, "
        "channels-redis group_send goes through Redis)"
    ),
    "prompt -> complete": "as above, to message.complete of a 4-word echo turn",
}


@dataclass
class Config:
    samples: int
    prompt_samples: int
    warmup: int
    prompt_warmup: int
    sessions: int
    slash: bool
    json_path: str | None


@dataclass
class Pair:
    """Interleaved same-worker and cross-worker samples (seconds) of one operation."""

    name: str
    same: list[float] = field(default_factory=list)
    cross: list[float] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        def stats(values: list[float]) -> dict[str, float]:
            return {
                "n": len(values),
                "p50_ms": percentile(values, 0.50) * 1000,
                "p99_ms": percentile(values, 0.99) * 1000,
                "min_ms": min(values, default=0.0) * 1000,
                "max_ms": max(values, default=0.0) * 1000,
                "mean_ms": (sum(values) / len(values) * 1000) if values else 0.0,
            }

        same, cross = stats(self.same), stats(self.cross)
        return {
            "same": same,
            "cross": cross,
            "ratio_p50": cross["p50_ms"] / same["p50_ms"] if same["p50_ms"] else 0.0,
            "ratio_p99": cross["p99_ms"] / same["p99_ms"] if same["p99_ms"] else 0.0,
            "note": NOTES.get(self.name, ""),
        }


### Samples ###


async def rpc_sample(client: Client, method: str, params: dict[str, Any]) -> float:
    """Send-to-response seconds of one request; an error response fails the run."""
    started = time.perf_counter()
    message = await client.request(method, params)
    elapsed = time.perf_counter() - started
    if "result" not in message:
        raise LoadError(f"{method} failed: {message.get('error')!r}")
    return elapsed


@dataclass
class TurnTiming:
    first_delta: float
    complete: float
    busy_retries: int


async def prompt_sample(client: Client, session_id: str) -> TurnTiming:
    """``prompt.submit`` -> first ``message.delta`` and -> ``message.complete`` of the turn."""
    retries = 0
    while True:
        started = time.perf_counter()
        request_id = await client.send_request(
            "prompt.submit", {"session_id": session_id, "text": PROMPT}
        )
        turn_id = first_turn = complete_turn = None
        first = complete = 0.0
        text = ""
        busy = False
        async with asyncio.timeout(TIMEOUT):
            while turn_id is None or complete_turn != turn_id:
                message = await client.recv()
                now = time.perf_counter()
                if message.get("id") == request_id and "method" not in message:
                    if "error" in message:
                        if message["error"].get("code") == SESSION_BUSY and retries < 50:
                            busy = True
                            break
                        raise LoadError(f"prompt.submit failed: {message['error']!r}")
                    turn_id = message["result"]["turn_id"]
                    continue
                if message.get("method") != "event":
                    continue
                event = message["params"]
                if event.get("session_id") != session_id:
                    continue
                if event["type"] == "message.delta" and first_turn is None:
                    first, first_turn = now, event["payload"]["turn_id"]
                elif event["type"] == "message.complete":
                    complete, complete_turn = now, event["payload"]["turn_id"]
                    text = event["payload"]["text"]
        if busy:
            # The previous turn's message.complete went out just before its bookkeeping.
            retries += 1
            await asyncio.sleep(0.005)
            continue
        if first_turn != turn_id or text != PROMPT:
            raise LoadError(f"turn {turn_id}: first delta of {first_turn}, text {text!r}")
        return TurnTiming(first - started, complete - started, retries)


async def interleaved(
    count: int,
    same: Callable[[], Awaitable[float]],
    cross: Callable[[], Awaitable[float]],
    pair: Pair | None,
) -> None:
    """``count`` rounds of one same and one cross sample, alternating which goes first, so
    drift on the machine (another process, a cache reload) lands on both sides alike."""
    for index in range(count):
        order = ((same, pair.same if pair else None), (cross, pair.cross if pair else None))
        if index % 2:
            order = order[::-1]
        for run, into in order:
            elapsed = await run()
            if into is not None:
                into.append(elapsed)


### The run ###


def health(server: GatewayServer) -> dict[str, Any]:
    response = httpx.get(server.http_url + "/healthz", timeout=10, trust_env=False)
    response.raise_for_status()
    return response.json()


async def measure(a: GatewayServer, b: GatewayServer, token: str, config: Config):
    """Every comparison, in one run against the same two workers."""
    on_a = await Client.open(a.url, token)
    on_b = await Client.open(b.url, token)
    extras: dict[str, Any] = {}
    try:
        for name, server in (("A", a), ("B", b)):
            check = await asyncio.to_thread(health, server)
            backend = check["channel_layer"].get("backend")
            if check["worker"] != name or backend != "ResilientRedisChannelLayer":
                raise LoadError(f"worker {name} is not set up as expected: {check}")
        for index in range(config.sessions):
            await on_a.call("session.create", {"title": f"listed {index}"})
        # R: resumed (and slash-executed) from both sockets; one turn of history.
        resumed = (await on_a.call("session.create", {"title": "resume"}))["session_id"]
        await prompt_sample(on_a, resumed)
        # PA: driven from A only. PB: hosted on A, driven from B only (created by a throwaway
        # socket on A, then resumed from B, so its events go to B's socket alone).
        prompt_a = (await on_a.call("session.create", {"title": "prompt same"}))["session_id"]
        creator = await Client.open(a.url, token)
        try:
            prompt_b = (await creator.call("session.create", {"title": "prompt cross"}))[
                "session_id"
            ]
        finally:
            await creator.close()
        await on_b.call("session.resume", {"session_id": resumed})
        await on_b.call("session.resume", {"session_id": prompt_b})
        # Let the write-behind store commit the rows, so B's first list load sees them all.
        await asyncio.sleep(0.5)

        pairs: list[Pair] = []

        async def rpc_pair(name: str, method: str, params: dict[str, Any], n: int, warm: int):
            pair = Pair(name)
            print(f"  {name}: {warm} warm-up + {n} samples per side", flush=True)

            def runner(client: Client) -> Callable[[], Awaitable[float]]:
                return lambda: rpc_sample(client, method, params)

            await interleaved(warm, runner(on_a), runner(on_b), None)
            await interleaved(n, runner(on_a), runner(on_b), pair)
            pairs.append(pair)

        await rpc_pair("gateway.ping", "gateway.ping", {}, config.samples, config.warmup)
        await rpc_pair("session.list", "session.list", {}, config.samples, config.warmup)
        await rpc_pair(
            "session.resume",
            "session.resume",
            {"session_id": resumed},
            config.samples,
            config.warmup,
        )
        if config.slash:
            await rpc_pair(
                "slash.exec /status",
                "slash.exec",
                {"session_id": resumed, "command": "/status"},
                config.prompt_samples,
                config.prompt_warmup,
            )

        first, complete = Pair("prompt -> first delta"), Pair("prompt -> complete")
        busy = {"same": 0, "cross": 0}
        print(
            f"  prompt.submit: {config.prompt_warmup} warm-up + {config.prompt_samples} turns"
            " per side",
            flush=True,
        )

        def turn(client: Client, session_id: str, side: str, record: bool):
            async def run() -> float:
                timing = await prompt_sample(client, session_id)
                busy[side] += timing.busy_retries
                if record:
                    getattr(first, side).append(timing.first_delta)
                    getattr(complete, side).append(timing.complete)
                return timing.first_delta

            return run

        await interleaved(
            config.prompt_warmup,
            turn(on_a, prompt_a, "same", False),
            turn(on_b, prompt_b, "cross", False),
            None,
        )
        await interleaved(
            config.prompt_samples,
            turn(on_a, prompt_a, "same", True),
            turn(on_b, prompt_b, "cross", True),
            None,
        )
        pairs += [first, complete]
        extras["busy_retries"] = busy

        # Sanity: both workers list the same rows; the slash worker lives on A only.
        rows_a = (await on_a.call("session.list"))["sessions"]
        rows_b = (await on_b.call("session.list"))["sessions"]
        extras["list_rows"] = {"A": len(rows_a), "B": len(rows_b)}
        extras["slash_workers"] = {"A": len(a.slash_workers()), "B": len(b.slash_workers())}
    finally:
        await on_a.close()
        await on_b.close()
    return pairs, extras


_started_pids: set[int] = set()


def _stop_and_check(server: GatewayServer, name: str) -> None:
    if server.process is None:
        return
    _started_pids.add(server.pid)
    _started_pids.update(proc.pid for proc in descendants(server.pid))
    if server.process.poll() is not None:
        print(f"!! worker {name} had exited with {server.process.returncode}:")
        print(server.log()[-4000:])
    server.stop()


def run(config: Config) -> dict[str, Any]:
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="hermes-multiworker-") as tmp:
        with contextlib.ExitStack() as stack:
            print("migrating a fresh database, minting a token", flush=True)
            database = Database(Path(tmp))
            token = database.token(USER)
            redis = RedisServer()
            stack.callback(redis.stop)
            redis.start()
            _started_pids.add(redis.process.pid)
            env = {
                "REDIS_URL": redis.url,
                # Back-to-back samples on one socket exceed the default 200 requests/s.
                "HERMES_GATEWAY_OPTIONS": json.dumps(
                    {"RATE_LIMIT_PER_S": 1_000_000, "RATE_LIMIT_BURST": 1_000_000}
                ),
                "HERMES_LOG_LEVEL": "WARNING",
            }
            workers = {}
            for name in ("A", "B"):
                server = GatewayServer(database, env={**env, "HERMES_WORKER_NAME": name})
                stack.callback(_stop_and_check, server, name)
                workers[name] = server.start()
            a, b = workers["A"], workers["B"]
            print(
                f"redis-server :{redis.port}, daphne A :{a.port}, daphne B :{b.port}",
                flush=True,
            )
            try:
                pairs, extras = asyncio.run(measure(a, b, token, config))
            except BaseException:
                for name, server in workers.items():
                    print(f"!! log of worker {name} (tail):\n{server.log()[-3000:]}")
                raise
    leftover = sorted(running(_started_pids))
    return {
        "config": {
            "samples": config.samples,
            "prompt_samples": config.prompt_samples,
            "warmup": config.warmup,
            "prompt_warmup": config.prompt_warmup,
            "listed_sessions": config.sessions,
            "prompt": PROMPT,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "daphne": version("daphne"),
            "channels_redis": version("channels-redis"),
            "load_before": load_before,
            "load_after": os.getloadavg(),
        },
        "operations": {pair.name: pair.figures() for pair in pairs},
        **extras,
        "leftover_processes": leftover,
        "slash_workers_alive_after": len(slash_worker_pids()),
    }


### Output ###


def table(results: dict[str, Any]) -> str:
    header = (
        f"{'operation':<24}{'same p50':>10}{'same p99':>10}{'cross p50':>11}{'cross p99':>11}"
        f"{'ratio p50':>11}{'ratio p99':>11}"
    )
    lines = [header, "-" * len(header)]
    for name, figures in results["operations"].items():
        same, cross = figures["same"], figures["cross"]
        lines.append(
            f"{name:<24}{same['p50_ms']:>10.2f}{same['p99_ms']:>10.2f}{cross['p50_ms']:>11.2f}"
            f"{cross['p99_ms']:>11.2f}{figures['ratio_p50']:>10.2f}x{figures['ratio_p99']:>10.2f}x"
        )
    lines.append("")
    lines.append(
        "ms; same = socket on A (the sessions' host), cross = socket on B; ratio = cross/same"
    )
    for name, figures in results["operations"].items():
        n = f"n={figures['same']['n']}/{figures['cross']['n']}"
        lines.append(f"  {name} ({n}): {figures['note']}")
    return "\n".join(lines)


def summary(results: dict[str, Any]) -> str:
    machine = results["machine"]
    load = " ".join(f"{v:.2f}" for v in machine["load_before"])
    load_after = " ".join(f"{v:.2f}" for v in machine["load_after"])
    return (
        f"list rows A/B: {results['list_rows']['A']}/{results['list_rows']['B']}; "
        f"slash workers A/B: {results['slash_workers']['A']}/{results['slash_workers']['B']}; "
        f"busy retries same/cross: {results['busy_retries']['same']}/"
        f"{results['busy_retries']['cross']}\n"
        f"{machine['cpus']} CPUs, load {load} -> {load_after}; daphne {machine['daphne']}, "
        f"channels-redis {machine['channels_redis']}; leftover processes: "
        f"{results['leftover_processes'] or 'none'}"
    )


def parse_args(argv: list[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(
        description=__doc__.strip().splitlines()[0],
        epilog="See benchmarks/README.md (Multi-worker latency) for what each row measures.",
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=300,
        help="samples per side for ping, session.list and session.resume (default 300)",
    )
    parser.add_argument(
        "--prompt-samples",
        type=int,
        default=50,
        help="turns per side for prompt.submit, and samples per side for slash.exec (50)",
    )
    parser.add_argument(
        "--warmup", type=int, default=30, help="unrecorded rounds before each rpc row (30)"
    )
    parser.add_argument(
        "--prompt-warmup",
        type=int,
        default=5,
        help="unrecorded rounds before the prompt and slash rows (5)",
    )
    parser.add_argument(
        "--sessions",
        type=int,
        default=10,
        help="extra sessions created on A so session.list has rows (10; 3 more are made)",
    )
    parser.add_argument("--no-slash", action="store_true", help="skip the slash.exec row")
    parser.add_argument("--json", metavar="PATH", help="also write every figure to PATH")
    args = parser.parse_args(argv)
    if min(args.samples, args.prompt_samples) < 1 or min(args.warmup, args.prompt_warmup) < 0:
        parser.error("sample counts must be >= 1 and warm-ups >= 0")
    if not 0 <= args.sessions <= 50:
        parser.error("--sessions must be within 0..50 (the per-user live-session cap is 64)")
    return Config(
        samples=args.samples,
        prompt_samples=args.prompt_samples,
        warmup=args.warmup,
        prompt_warmup=args.prompt_warmup,
        sessions=args.sessions,
        slash=not args.no_slash,
        json_path=args.json,
    )


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    results = run(config)
    print()
    print(table(results))
    print(summary(results))
    if config.json_path:
        Path(config.json_path).write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {config.json_path}")
    return 1 if results["leftover_processes"] else 0


if __name__ == "__main__":
    sys.exit(main())
