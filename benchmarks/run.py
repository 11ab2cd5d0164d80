"""
Benchmark the gateway against two minimal Channels consumers, on the same ASGI server and
machine, under the same client load; print one table of figures, ratios and PASS/FAIL targets.

    python benchmarks/run.py [--server daphne|uvicorn|both] [--connections 8] [--duration 3]
                             [--churn 600] [--sessions 1000] [--words 2000] [--rounds 5]
                             [--phases memory,rpc,stream,churn] [--json out.json]
    python benchmarks/run.py --quick      # small sizes, a ~30 s smoke run

See benchmarks/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import load  # noqa: E402
from benchmarks.report import TARGETS, THROUGHPUT, notes, table, verdicts  # noqa: E402
from tests.support.procs import running  # noqa: E402
from tests.support.servers import (  # noqa: E402
    Database,
    GatewayServer,
    descendants,
    slash_worker_pids,
)

APPS = {
    "stock": "benchmarks.baseline_site.asgi:stock",
    "nohop": "benchmarks.baseline_site.asgi:nohop",
    "gateway": "hermes_site.asgi:application",
}
#: Sessions per benchmark user, below the gateway's MAX_SESSIONS_PER_USER (64).
SESSIONS_PER_USER = 50
#: Sessions created on each connection of the memory fill (divides SESSIONS_PER_USER).
SESSIONS_PER_CONNECTION = 10
#: Seconds to let disconnects and write-behind settle before reading RSS.
SETTLE_S = 1.5


PHASES = ("memory", "rpc", "stream", "churn")
#: Churn cycles a target runs before the next target takes its turn (see ``churn_round``).
CHURN_SLICE = 100
#: Windows each target's rpc ``--duration`` is cut into, taking turns (see ``rpc_round``).
RPC_SLICES = 6


@dataclass
class Config:
    servers: tuple[str, ...]
    connections: int
    duration: float
    warmup: float
    churn: int
    sessions: int
    words: int
    rounds: int
    phases: tuple[str, ...] = PHASES


### Users and servers ###


class Users:
    """Benchmark users and their tokens, minted once per run through ``Database.token``."""

    def __init__(self, database: Database):
        self.database = database
        self.tokens: dict[str, str] = {}

    def mint(self, names: list[str]) -> None:
        missing = [name for name in names if name not in self.tokens]
        # Each mint is a manage.py process (~1 s); run a few at once.
        with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
            for name, token in zip(missing, pool.map(self.database.token, missing), strict=True):
                self.tokens[name] = token

    def __getitem__(self, name: str) -> str:
        return self.tokens[name]

    @staticmethod
    def pool_names(count: int) -> list[str]:
        return [f"bench-pool-{index}" for index in range(count)]

    def pool_token_for(self, index: int) -> str:
        """The token of the pool user owning the ``index``-th session of a phase."""
        return self.tokens[f"bench-pool-{index // SESSIONS_PER_USER}"]


def users_needed(config: Config) -> list[str]:
    pool = -(-max(config.churn * config.rounds, config.sessions) // SESSIONS_PER_USER)
    names = ["bench-stream", "bench-warm", *Users.pool_names(pool)]
    names += [
        f"bench-rpc-{server}-{index}" for server in config.servers for index in range(config.rounds)
    ]
    return names


def target_env(target: str, list_size: int) -> dict[str, Any]:
    """Server environment of a target; the baselines answer lists of ``list_size`` rows."""
    if target == "gateway":
        return dict(load.GATEWAY_ENV)
    # base_env() sets the gateway's settings module; the baselines bring their own.
    return {
        "DJANGO_SETTINGS_MODULE": "benchmarks.baseline_site.settings",
        "BENCH_LIST_SIZE": list_size,
    }


def make_server(
    database: Database, server: str, target: str, config: Config, *, memory: bool
) -> GatewayServer:
    env = target_env(target, config.connections)
    if target == "gateway" and memory:
        # Keep every idle session live for the measurement: no eviction beyond the default
        # cap of 256 and no reap during the run (20 s grace by default).
        env.update(
            HERMES_TUI_MAX_LIVE_SESSIONS=config.sessions + 1000,
            HERMES_TUI_WS_ORPHAN_REAP_GRACE_S=3600,
        )
    return GatewayServer(database, server=server, app=APPS[target], env=env)


def start_servers(
    stack: contextlib.ExitStack, database: Database, server: str, config: Config, *, memory: bool
) -> dict[str, GatewayServer]:
    servers = {
        target: make_server(database, server, target, config, memory=memory) for target in TARGETS
    }
    for instance in servers.values():
        stack.callback(_stop_and_check, instance)
    with ThreadPoolExecutor(max_workers=len(servers)) as pool:
        list(pool.map(lambda s: s.start(), servers.values()))
    return servers


_started_pids: set[int] = set()


def _stop_and_check(server: GatewayServer) -> None:
    if server.process is None:
        return
    _started_pids.add(server.pid)
    _started_pids.update(proc.pid for proc in descendants(server.pid))
    if server.process.poll() is not None:
        print(f"!! {server.app} ({server.server}) had exited with {server.process.returncode}:")
        print(server.log()[-4000:])
    server.stop()


class SlashWatch(load.Sampler):
    """The server's slash-worker children seen while a phase runs (every 50 ms)."""

    def __init__(self, pid: int):
        self.pid = pid
        self.seen: set[int] = set()
        super().__init__(self._look)

    def _look(self) -> None:
        self.seen |= slash_worker_pids(self.pid)


### Phases ###


async def memory_phase(
    server: GatewayServer, users: Users, config: Config, *, verify: bool
) -> dict[str, Any]:
    concurrency = config.connections
    await load.warm_connections(server.url, users["bench-warm"], concurrency)
    await asyncio.sleep(SETTLE_S)
    before = server.rss()
    with SlashWatch(server.pid) as watch:
        fill = await load.fill_sessions(
            server.url, users.pool_token_for, config.sessions, SESSIONS_PER_CONNECTION, concurrency
        )
        await asyncio.sleep(SETTLE_S)
        after = server.rss()
    ids = set(fill.pop("session_ids"))
    result = {
        **fill,
        "rss_before_mb": before / 2**20,
        "rss_after_mb": after / 2**20,
        "kb_per_session": (after - before) / 1024 / max(fill["sessions"], 1),
        "slash_workers_seen": len(watch.seen),
    }
    if verify:
        pool = -(-config.sessions // SESSIONS_PER_USER)
        tokens = [users[name] for name in Users.pool_names(pool)]
        result["statuses"] = await load.count_statuses(server.url, tokens, ids)
    return result


def rpc_round(
    servers: dict[str, GatewayServer], users: Users, name: str, config: Config, round_index: int
) -> dict[str, dict[str, Any]]:
    """One rpc round: every target's window cut into ``RPC_SLICES`` that take turns."""
    # A user per round: the gateway lists every stored row of the user, earlier rounds'
    # sessions included, so each round starts with the same list.
    token = users[f"bench-rpc-{name}-{round_index}"]
    return asyncio.run(
        load.rpc_rounds_interleaved(
            {target: (servers[target].url, token) for target in load.rotated(TARGETS, round_index)},
            config.connections,
            config.duration,
            config.warmup,
            RPC_SLICES,
        )
    )


def churn_round(
    servers: dict[str, GatewayServer], users: Users, name: str, config: Config, round_index: int
) -> dict[str, dict[str, Any]]:
    """
    One churn round: ``config.churn`` cycles per target, run in slices of ``CHURN_SLICE``
    cycles that take turns between the targets, so a spell of a slow machine (a round of
    a few hundred cycles lasts about a second) lands on every target alike. Each slice of
    a round uses the same pool users on every target; later rounds move on to fresh ones.
    """
    size = min(CHURN_SLICE, config.churn)
    starts = range(0, config.churn, size)
    slices: dict[str, list[dict[str, Any]]] = {target: [] for target in servers}
    seen: dict[str, set[int]] = {target: set() for target in servers}
    cpu_before = {target: server.cpu_seconds() for target, server in servers.items()}
    offset = round_index * config.churn
    for index, start in enumerate(starts):
        for target in load.rotated(TARGETS, round_index + index):
            cycles = min(size, config.churn - start)
            first = offset + start
            with SlashWatch(servers[target].pid) as watch:
                figures = load.churn_load(
                    servers[target].url,
                    lambda i, first=first: users.pool_token_for(first + i),
                    cycles,
                    config.connections,
                )
                slices[target].append(asyncio.run(figures))
            seen[target] |= watch.seen
    out = {}
    for target, server in servers.items():
        figures = load.combine_churn(slices[target])
        del figures["latencies_s"]
        out[target] = {
            **figures,
            "slices": len(slices[target]),
            # CPU of the server process (every thread) per cycle: steadier than cycles/s on
            # a shared machine, and the server's own cost apart from the client's. Between
            # its slices the server is idle, so the round's CPU is its slices' CPU.
            "server_cpu_ms": (server.cpu_seconds() - cpu_before[target])
            * 1000
            / max(figures["completed"], 1),
            "slash_workers_seen": len(seen[target]),
            "slash_workers_alive": len(slash_worker_pids(server.pid)),
        }
    return out


#: Phases whose rounds run the targets in turns (the stream phase is far from its target).
INTERLEAVED = {"rpc": rpc_round, "churn": churn_round}


def run_server(database: Database, users: Users, server: str, config: Config) -> dict[str, Any]:
    """Every phase against the three targets under one ASGI server; best round per target."""
    results: dict[str, Any] = {phase: {} for phase in config.phases}
    results["rounds"] = {}
    if "memory" in config.phases:
        print(f"[{server}] memory: {config.sessions} idle detached sessions", flush=True)
        with contextlib.ExitStack() as stack:
            servers = start_servers(stack, database, server, config, memory=True)
            for target, instance in servers.items():
                results["memory"][target] = asyncio.run(
                    memory_phase(instance, users, config, verify=target == "gateway")
                )
    titles = {
        "rpc": f"{config.connections} connections x {config.duration}s",
        "stream": f"{config.connections} x {config.words} words",
        "churn": f"{config.churn} cycles",
    }
    phases = {phase: title for phase, title in titles.items() if phase in config.phases}
    if not phases:
        return results
    with contextlib.ExitStack() as stack:
        servers = start_servers(stack, database, server, config, memory=False)
        for phase, title in phases.items():
            print(f"[{server}] {phase}: {title}, {config.rounds} round(s)", flush=True)
            rounds: dict[str, list[dict[str, Any]]] = {target: [] for target in TARGETS}
            for round_index in range(config.rounds):
                if phase in INTERLEAVED:
                    taking_turns = INTERLEAVED[phase](servers, users, server, config, round_index)
                    for target, figures in taking_turns.items():
                        rounds[target].append(figures)
                    continue
                # Rotate the order each round so no target always runs first (or last).
                for target in load.rotated(TARGETS, round_index):
                    stream = load.stream_load(
                        servers[target].url, users["bench-stream"], config.connections, config.words
                    )
                    rounds[target].append(asyncio.run(stream))
            results["rounds"][phase] = rounds
            for target, figures in rounds.items():
                results[phase][target] = max(figures, key=lambda f: f[THROUGHPUT[phase].key])
    return results


### Command line ###

QUICK = {
    "connections": 4,
    "duration": 1.5,
    "warmup": 0.5,
    "churn": 40,
    "sessions": 100,
    "words": 300,
    "rounds": 1,
}
#: Five rounds, best kept: one round of one target slowed by the machine must not decide
#: a verdict (noise only ever slows a round down).
DEFAULTS = {
    "connections": 8,
    "duration": 3.0,
    "warmup": 1.0,
    "churn": 600,
    "sessions": 1000,
    "words": 2000,
    "rounds": 5,
}


def parse_args(argv: list[str] | None = None) -> tuple[Config, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--server", choices=["daphne", "uvicorn", "both"], default="daphne")
    parser.add_argument("--connections", type=int, help="concurrent clients (8)")
    parser.add_argument("--duration", type=float, help="rpc measurement seconds (3)")
    parser.add_argument("--warmup", type=float, help="rpc seconds before measuring (1)")
    parser.add_argument("--churn", type=int, help="connect/create/disconnect cycles (600)")
    parser.add_argument("--sessions", type=int, help="idle detached sessions for memory (1000)")
    parser.add_argument("--words", type=int, help="words per streamed prompt (2000)")
    parser.add_argument(
        "--rounds", type=int, help="rpc/stream/churn rounds per target, best one kept (5)"
    )
    parser.add_argument(
        "--phases",
        type=_phases,
        default=PHASES,
        help=f"comma-separated subset of {','.join(PHASES)} (all)",
    )
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument("--quick", action="store_true", help="small sizes: a ~30 s smoke run")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else DEFAULTS
    values = {
        key: getattr(args, key) if getattr(args, key) is not None else default
        for key, default in sizes.items()
    }
    servers = ("daphne", "uvicorn") if args.server == "both" else (args.server,)
    return Config(servers=servers, phases=args.phases, **values), args


def _phases(text: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [phase for phase in chosen if phase not in PHASES]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"phases must be among {', '.join(PHASES)}")
    return chosen


def main(argv: list[str] | None = None) -> int:
    config, args = parse_args(argv)
    began = time.monotonic()
    print(
        f"hermes-gateway benchmark: python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"channels {version('channels')}, daphne {version('daphne')}, "
        f"uvicorn {version('uvicorn')}, websockets {version('websockets')}",
        flush=True,
    )
    revision = git_revision()
    print(f"gateway revision: {revision}", flush=True)
    print(f"config: {asdict(config)}", flush=True)
    load_before = os.getloadavg()
    print(f"load average: {load_summary(load_before)}", flush=True)
    if load_before[0] > 0.5 * (os.cpu_count() or 1):
        print(
            "warning: the machine is busy; figures will be noisy (try --rounds 8 --duration 2)",
            flush=True,
        )
    all_results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="hermes-bench-") as directory:
        database = Database(Path(directory))
        users = Users(database)
        users.mint(users_needed(config))
        for server in config.servers:
            all_results[server] = run_server(database, users, server, config)

    leftover = running(_started_pids)
    print()
    print(table(all_results, config))
    print()
    for line in notes(all_results, config):
        print(f"note: {line}")
    print(f"processes left behind: {leftover or 'none'}")
    print(f"load average before: {load_summary(load_before)}, after: {load_summary()}")
    print(f"total time: {time.monotonic() - began:.0f}s")
    if args.json is not None:
        payload = {
            "config": asdict(config),
            "revision": revision,
            "machine": {
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "loadavg_before": load_before,
                "loadavg_after": os.getloadavg(),
            },
            "results": all_results,
            "verdicts": {s: verdicts(r, config) for s, r in all_results.items()},
            "leftover_pids": leftover,
        }
        args.json.write_text(json.dumps(payload, indent=2, default=str))
        print(f"wrote {args.json}")
    return 1 if leftover else 0


def git_revision() -> str:
    """The checkout's commit, ``-dirty`` when the work tree has changes (figures depend on it)."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def load_summary(values: tuple[float, float, float] | None = None) -> str:
    return " ".join(f"{v:.2f}" for v in (values or os.getloadavg()))


if __name__ == "__main__":
    sys.exit(main())
