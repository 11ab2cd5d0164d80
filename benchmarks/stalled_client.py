"""
Stalled-client benchmark: what a client that stops reading costs everyone else.

    python benchmarks/stalled_client.py [--connections 8] [--duration 20] [--warmup 1]
                                        [--stalled 1] [--sessions 8] [--rate 40]
                                        [--prompt-chars 31000] [--word-chars 32]
                                        [--no-control] [--json out.json]

Three phases, each on a fresh daphne running the gateway with its default send-queue limits
(SEND_QUEUE_LIMIT / SEND_QUEUE_BYTES; only the per-connection rate limit is off, as in
run.py, so the measuring clients are never answered 4029): ``--connections`` clients send
``session.list`` back to back for ``--duration`` seconds (``load.rpc_load``) with

- **baseline**: nothing else connected;
- **reading flood** (control): ``--stalled`` clients submit long prompts at ``--rate`` and
  read everything, i.e. the same work as the stalled clients without the stall;
- **stalled**: ``--stalled`` clients on raw sockets with a 4 KiB receive buffer create
  ``--sessions`` sessions, read the answers, then submit long prompts at ``--rate`` and never
  read again, until the server drops them; each one dropped is replaced by a fresh one.

Printed: p50/p99 and the ratios to the baseline, server RSS before / peak / after, and for
every stalled client how long until it was closed, with what (the server's ``limit
send_queue`` log line: 4008), and what it had sent and left queued. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import load  # noqa: E402
from gateway_app.conf import DEFAULTS  # noqa: E402
from tests.support.procs import running  # noqa: E402
from tests.support.rawws import RawWebSocket, encode_frame  # noqa: E402
from tests.support.servers import Database, GatewayServer, descendants  # noqa: E402

#: The stalled client's kernel receive buffer (the kernel doubles it and applies a minimum).
RECV_BUFFER = 4096
#: Seconds to let disconnects settle before reading RSS.
SETTLE_S = 1.5
#: Stalled users; sessions are spread over them so none reaches MAX_SESSIONS_PER_USER.
STALLED_USERS = 3
PHASES = ("baseline", "reading flood", "stalled")

LIMIT_LINE = re.compile(
    r"limit send_queue hit by user=\S+ peer=[\d.]+:(\d+) \S+ (\d+) frames / (\d+) bytes unsent"
)
CLOSE_LINE = re.compile(
    r"connection closed transport=websocket user=\S+ peer=[\d.]+:(\d+) .*? code=(\S+)"
    r"(?: closed_by_gateway=(\d+))?"
)


@dataclass
class Config:
    connections: int
    duration: float
    warmup: float
    stalled: int
    sessions: int
    rate: float
    prompt_chars: int
    word_chars: int
    control: bool


@dataclass
class FloodClient:
    """One flooding client: what it sent, and how and when its connection ended."""

    port: int = 0
    requests: int = 0
    bytes_sent: int = 0
    flooded_s: float = 0.0
    #: "dropped" (the server ended the connection), "stopped" (the benchmark's end), "error".
    outcome: str = ""
    #: What a final read found: "close frame", "reset", "eof" or "timeout"; and the code.
    ending: str = ""
    close_code: int | None = None
    error: str = ""
    #: From the server log: frames/bytes queued when send_queue was hit; the close code.
    queued_frames: int | None = None
    queued_bytes: int | None = None
    server_code: str = ""


class FloodDriver:
    """
    Keeps ``count`` flooding clients connected on threads (raw sockets). Each one creates its
    sessions and reads the answers, then sends pre-encoded ``prompt.submit`` frames round
    robin at ``rate`` per second; a stalled one never reads again (until the server drops it,
    then a fresh one takes its place), a reading one drains its socket on a second thread.
    """

    def __init__(
        self,
        port: int,
        tokens: list[str],
        config: Config,
        *,
        reading: bool,
    ):
        self.port = port
        self.tokens = tokens
        self.config = config
        self.reading = reading
        self.clients: list[FloodClient] = []
        self.flooding = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._next_user = 0
        self._lock = threading.Lock()
        word = "w" * max(1, config.word_chars - 1) + " "
        self.text = (word * (config.prompt_chars // len(word) + 1))[: config.prompt_chars]

    def start(self) -> None:
        for index in range(self.config.stalled):
            thread = threading.Thread(target=self._slot, name=f"flood-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _token(self) -> str:
        with self._lock:
            self._next_user += 1
            return self.tokens[self._next_user % len(self.tokens)]

    def _slot(self) -> None:
        while not self._stop.is_set():
            record = FloodClient()
            with self._lock:
                self.clients.append(record)
            try:
                self._run(record)
            except Exception as exc:  # a failed client is a figure, not a crash
                record.outcome = record.outcome or "error"
                record.error = f"{type(exc).__name__}: {exc}"
                self._stop.wait(0.5)

    def _run(self, record: FloodClient) -> None:
        raw = RawWebSocket(
            self.port, self._token(), recv_buffer=0 if self.reading else RECV_BUFFER, timeout=10
        )
        with raw:
            record.port = raw.sock.getsockname()[1]
            if raw.status != 101:
                raise ConnectionError(f"handshake answered {raw.status}")
            raw.recv_json()  # gateway.ready
            frames = []
            for index in range(self.config.sessions):
                sid = raw.call("session.create", {"title": f"flood {index}"})["session_id"]
                # Same id every time: a stalled client never reads the answers anyway.
                request = {
                    "jsonrpc": "2.0",
                    "id": index + 1000,
                    "method": "prompt.submit",
                    "params": {"session_id": sid, "text": self.text},
                }
                frames.append(encode_frame(json.dumps(request).encode()))
            drain = None
            if self.reading:
                drain = threading.Thread(target=_drain, args=(raw,), daemon=True)
                drain.start()
            self.flooding.set()
            interval = 1.0 / self.config.rate
            started = time.perf_counter()
            due = started
            try:
                while not self._stop.is_set():
                    frame = frames[record.requests % len(frames)]
                    raw.sock.sendall(frame)
                    record.requests += 1
                    record.bytes_sent += len(frame)
                    due += interval
                    self._stop.wait(max(0.0, due - time.perf_counter()))
                record.outcome = "stopped"
            except OSError as exc:
                # The server dropped the connection: sends fail once its RST arrived.
                record.outcome = "dropped"
                record.error = type(exc).__name__
            record.flooded_s = time.perf_counter() - started
            if record.outcome == "dropped":
                raw.sock.settimeout(2.0)
                record.close_code, record.ending = raw.read_until_closed()
            if drain is not None:
                raw.sock.close()
                drain.join(5)


def _drain(raw: RawWebSocket) -> None:
    """Read and drop everything (the control's well-behaved reader)."""
    try:
        while raw.sock.recv(1 << 16):
            pass
    except OSError:
        pass


class RssSampler(load.Sampler):
    """The server's RSS every 50 ms while a phase runs: the peak."""

    def __init__(self, server: GatewayServer):
        self.server = server
        self.peak = 0
        super().__init__(self._look)

    def _look(self) -> None:
        self.peak = max(self.peak, self.server.rss())


_started_pids: set[int] = set()


async def run_phase(
    database: Database, tokens: dict[str, Any], config: Config, phase: str
) -> dict[str, Any]:
    """One phase on a fresh server; returns its figures."""
    # load.GATEWAY_ENV turns the rate limit off only (as run.py does): the measuring clients send
    # back to back. The send-queue limits keep their defaults.
    server = GatewayServer(database, env=load.GATEWAY_ENV)
    with server:
        _started_pids.add(server.pid)
        await load.warm_connections(server.url, tokens["warm"], config.connections)
        await asyncio.sleep(SETTLE_S)
        rss_before = server.rss()
        driver = None
        if phase != "baseline":
            driver = FloodDriver(
                server.port, tokens["flood"], config, reading=phase == "reading flood"
            )
        with RssSampler(server) as sampler:
            if driver is not None:
                driver.start()
                if not await asyncio.to_thread(driver.flooding.wait, 30):
                    driver.stop()
                    raise RuntimeError(f"no flooding client got going: {driver.clients}")
            try:
                rpc = await load.rpc_load(
                    server.url, tokens[phase], config.connections, config.duration, config.warmup
                )
            finally:
                if driver is not None:
                    await asyncio.to_thread(driver.stop)
            await asyncio.sleep(SETTLE_S)
            rss_after = server.rss()
        rss_peak = max(sampler.peak, rss_after)
        log = server.log()
        server_alive = server.process.poll() is None
        _started_pids.update(proc.pid for proc in descendants(server.pid))
    clients = driver.clients if driver is not None else []
    limits = {int(m[1]): (int(m[2]), int(m[3])) for m in LIMIT_LINE.finditer(log)}
    closes = {
        int(m[1]): m[2] + (f" (gateway sent {m[3]})" if m[3] else "")
        for m in CLOSE_LINE.finditer(log)
    }
    for client in clients:
        if client.port in limits:
            client.queued_frames, client.queued_bytes = limits[client.port]
        client.server_code = closes.get(client.port, "")
    return {
        "phase": phase,
        "rpc": rpc,
        "rss_before": rss_before,
        "rss_peak": rss_peak,
        "rss_after": rss_after,
        "clients": [asdict(client) for client in clients if client.port],
        "send_queue_hits": len(limits),
        "server_alive": server_alive,
        "tracebacks": log.count("Traceback"),
    }


### Report ###


def mib(value: int) -> str:
    return f"{value / 2**20:.1f}"


def report(results: dict[str, dict[str, Any]], config: Config) -> str:
    base = results["baseline"]["rpc"]
    lines = [
        f"{'phase':<15} {'req/s':>8} {'errors':>6} {'p50 ms':>8} {'p99 ms':>8}"
        f" {'p99/base':>9}   {'RSS MiB before / peak / after':>30}",
    ]
    for phase in PHASES:
        if phase not in results:
            continue
        result = results[phase]
        rpc = result["rpc"]
        ratio = rpc["p99_ms"] / base["p99_ms"] if base["p99_ms"] else float("inf")
        rss = (
            f"{mib(result['rss_before'])} / {mib(result['rss_peak'])} / {mib(result['rss_after'])}"
        )
        lines.append(
            f"{phase:<15} {rpc['req_per_s']:>8.0f} {rpc['errors']:>6} {rpc['p50_ms']:>8.2f}"
            f" {rpc['p99_ms']:>8.2f} {ratio:>8.2f}x   {rss:>30}"
        )
    stalled = results["stalled"]
    dropped = [c for c in stalled["clients"] if c["outcome"] == "dropped"]
    lines.append("")
    lines.append(
        f"stalled clients: {len(stalled['clients'])} connected ({config.stalled} at a time),"
        f" {len(dropped)} dropped by the server, {stalled['send_queue_hits']}"
        " 'limit send_queue hit' (4008) log lines"
    )
    if dropped:
        times = [c["flooded_s"] for c in dropped]
        lines.append(
            "  time from first flood frame to closed: "
            f"min {min(times):.2f}s, median {statistics.median(times):.2f}s,"
            f" max {max(times):.2f}s"
        )
        requests = [c["requests"] for c in dropped]
        sent = [c["bytes_sent"] for c in dropped]
        lines.append(
            f"  each sent (median): {statistics.median(requests):.0f} prompt.submit,"
            f" {statistics.median(sent) / 2**20:.1f} MiB"
        )
        queued = [c for c in dropped if c["queued_frames"] is not None]
        if queued:
            frames = statistics.median(c["queued_frames"] for c in queued)
            nbytes = statistics.median(c["queued_bytes"] for c in queued)
            lines.append(
                f"  queued in the outbox at the close (median): {frames:.0f} frames,"
                f" {nbytes / 2**20:.2f} MiB (limits {DEFAULTS['SEND_QUEUE_LIMIT']} frames /"
                f" {DEFAULTS['SEND_QUEUE_BYTES'] / 2**20:.0f} MiB)"
            )
        endings: dict[str, int] = {}
        for client in dropped:
            key = client["ending"] + (
                f" {client['close_code']}" if client["close_code"] is not None else ""
            )
            endings[key] = endings.get(key, 0) + 1
        server_codes: dict[str, int] = {}
        for client in dropped:
            server_codes[client["server_code"] or "?"] = (
                server_codes.get(client["server_code"] or "?", 0) + 1
            )
        lines.append(f"  the stalled client then read: {endings}")
        lines.append(f"  disconnect code in the close log line: {server_codes}")
    errors = [c["error"] for c in stalled["clients"] if c["outcome"] == "error"]
    if errors:
        lines.append(f"  failed clients: {len(errors)}, first: {errors[0]}")
    stalled_p99 = stalled["rpc"]["p99_ms"]
    if "reading flood" in results and results["reading flood"]["rpc"]["p99_ms"]:
        control_p99 = results["reading flood"]["rpc"]["p99_ms"]
        lines.append(f"p99 ratio stalled / reading flood: {stalled_p99 / control_p99:.2f}x")
    if base["p99_ms"]:
        lines.append(f"p99 ratio stalled / baseline: {stalled_p99 / base['p99_ms']:.2f}x")
    return "\n".join(lines)


### Main ###


def parse_args(argv: list[str] | None = None) -> tuple[Config, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        description=__doc__.strip().splitlines()[0],
        epilog="See benchmarks/README.md (Stalled clients) for what each figure means.",
    )
    parser.add_argument("--connections", type=int, default=8, help="measuring clients (8)")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds (20)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring (1)")
    parser.add_argument("--stalled", type=int, default=1, help="stalled clients at a time (1)")
    parser.add_argument("--sessions", type=int, default=8, help="sessions per stalled client (8)")
    parser.add_argument(
        "--rate", type=float, default=40.0, help="prompt.submit per second per client (40)"
    )
    parser.add_argument(
        "--prompt-chars", type=int, default=31000, help="characters per prompt (31000)"
    )
    parser.add_argument(
        "--word-chars", type=int, default=32, help="characters per word of the prompt (32)"
    )
    parser.add_argument(
        "--no-control", action="store_true", help="skip the reading-flood control phase"
    )
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args(argv)
    config = Config(
        connections=args.connections,
        duration=args.duration,
        warmup=args.warmup,
        stalled=args.stalled,
        sessions=args.sessions,
        rate=args.rate,
        prompt_chars=args.prompt_chars,
        word_chars=args.word_chars,
        control=not args.no_control,
    )
    return config, args


async def run(config: Config) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="hermes-stalled-") as directory:
        database = Database(Path(directory))
        # One measuring user per phase, so each lists the same number of sessions.
        names = ["warm", *PHASES, *(f"flood-{i}" for i in range(STALLED_USERS))]
        minted = await asyncio.gather(
            *(asyncio.to_thread(database.token, f"stall-{name}") for name in names)
        )
        tokens: dict[str, Any] = dict(zip(names, minted, strict=True))
        tokens["flood"] = [tokens[f"flood-{i}"] for i in range(STALLED_USERS)]
        for phase in PHASES:
            if phase == "reading flood" and not config.control:
                continue
            print(f"phase: {phase} ...", flush=True)
            results[phase] = await run_phase(database, tokens, config, phase)
    return results


def main(argv: list[str] | None = None) -> int:
    config, args = parse_args(argv)
    began = time.monotonic()
    print(f"config: {asdict(config)}", flush=True)
    print(
        f"send-queue limits (defaults): SEND_QUEUE_LIMIT={DEFAULTS['SEND_QUEUE_LIMIT']},"
        f" SEND_QUEUE_BYTES={DEFAULTS['SEND_QUEUE_BYTES']}; load average"
        f" {' '.join(f'{v:.2f}' for v in os.getloadavg())}",
        flush=True,
    )
    results = asyncio.run(run(config))
    leftover = running(_started_pids)
    print()
    print(report(results, config))
    for phase, result in results.items():
        if not result["server_alive"] or result["tracebacks"]:
            print(
                f"!! {phase}: server alive={result['server_alive']},"
                f" tracebacks in its log={result['tracebacks']}"
            )
    print(f"processes left behind: {leftover or 'none'}")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"total time: {time.monotonic() - began:.0f}s")
    if args.json is not None:
        args.json.write_text(
            json.dumps({"config": asdict(config), "results": results}, indent=2, default=str)
        )
        print(f"wrote {args.json}")
    return 1 if leftover else 0


if __name__ == "__main__":
    sys.exit(main())
