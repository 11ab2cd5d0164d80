"""
Profile the gateway server process under one benchmark load and print its top functions.

    python benchmarks/profile_gateway.py [--sampler py-spy|cprofile] [--server daphne|uvicorn]
                                         [--phase rpc|churn|stream] [--duration 5] [--top 15]
                                         [--target gateway|stock|nohop]

``py-spy`` (not a project requirement: ``pip install py-spy``; attaching needs root or
ptrace rights) samples whichever thread holds the GIL, so ORM work in
``database_sync_to_async`` threads shows up beside the event loop and the figures are where
Python's CPU goes (C code running without the GIL, such as SQLite executing a statement, is
not counted). ``--waiting`` samples every thread that is not idle instead: py-spy counts a
thread waiting for the GIL as busy, which makes the database thread look many times busier
than it is. ``cprofile`` needs nothing
extra: the server runs as ``python -m cProfile -o FILE -m daphne ...`` and is stopped with
SIGTERM, but it sees the event-loop thread only (thread work appears as the loop waiting).
``--target`` profiles one of ``run.py``'s baselines under the same load instead, to tell the
ASGI server's own cost from the gateway's.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import pstats
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import load  # noqa: E402
from benchmarks.run import APPS, target_env  # noqa: E402
from tests.support.servers import PYTHON, Database, GatewayServer  # noqa: E402

#: Churn cycles per user at the least; longer runs raise the gateway's per-user session limit.
CHURN_PER_USER = 50


class CProfiledServer(GatewayServer):
    """The gateway under its ASGI server, wrapped in ``python -m cProfile``."""

    def __init__(self, *args, profile_path: Path, **kwargs):
        super().__init__(*args, **kwargs)
        self.profile_path = profile_path

    def command(self) -> list[str]:
        command = super().command()
        assert command[:2] == [PYTHON, "-m"]
        return [PYTHON, "-m", "cProfile", "-o", str(self.profile_path), *command[1:]]


async def drive(server: GatewayServer, tokens: list[str], phase: str, duration: float) -> dict:
    if phase == "rpc":
        return await load.rpc_load(server.url, tokens[0], 8, duration, 0.5)
    if phase == "stream":
        return await load.stream_load(server.url, tokens[0], 8, 2000)
    cycles = max(len(tokens) * CHURN_PER_USER, int(duration * 200))
    per_user = -(-cycles // len(tokens))
    figures = await load.churn_load(server.url, lambda i: tokens[i // per_user], cycles, 8)
    figures.pop("latencies_s")
    return figures


### py-spy ###


def py_spy_binary() -> str:
    found = shutil.which("py-spy") or str(Path(PYTHON).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("py-spy is not installed (pip install py-spy), or use --sampler cprofile")
    return found


def py_spy_profile(server: GatewayServer, run, out: Path, *, gil_only: bool = True) -> dict:
    """Sample ``server`` with py-spy while ``run()`` drives the load; returns the load figures."""
    spy = subprocess.Popen(
        [py_spy_binary(), "record", "--pid", str(server.pid), "--format", "raw",
         "--output", str(out), "--rate", "250", "--nonblocking",
         *(["--gil"] if gil_only else [])],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        figures = run()
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        try:
            _, err = spy.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
            _, err = spy.communicate()
    if not out.exists():
        raise SystemExit(f"py-spy wrote nothing: {err.decode(errors='replace')[-2000:]}")
    return figures


def summarize_collapsed(path: Path, top: int) -> str:
    """Top functions of a py-spy raw (collapsed stacks) file: self and inclusive samples."""
    own: Counter = Counter()
    inclusive: Counter = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        # Frames are "function (file:line)"; group by function and file, not by line.
        frames = [frame.rsplit(":", 1)[0] + ")" if ":" in frame else frame
                  for frame in stack.split(";")[1:]]  # fmt: skip
        if frames:
            own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    lines = [f"{total} samples of non-idle threads"]
    for title, counter in (("self", own), ("inclusive", inclusive)):
        lines.append(f"--- top {top} by {title} samples ---")
        for frame, samples in counter.most_common(top):
            lines.append(f"{100 * samples / max(total, 1):5.1f}%  {samples:6d}  {frame}")
    return "\n".join(lines)


### cProfile ###


def summarize_pstats(path: Path, top: int) -> str:
    parts = []
    for sort in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(str(path), stream=out).sort_stats(sort).print_stats(top)
        parts.append(f"--- top {top} by {sort} ---")
        parts.append(out.getvalue().split("\n\n", 1)[-1].strip())
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--sampler", choices=["py-spy", "cprofile"], default="py-spy")
    parser.add_argument("--server", choices=["daphne", "uvicorn"], default="daphne")
    parser.add_argument("--phase", choices=["rpc", "churn", "stream"], default="rpc")
    parser.add_argument("--target", choices=list(APPS), default="gateway")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--out", type=Path, help="keep the raw profile file here")
    parser.add_argument(
        "--waiting",
        action="store_true",
        help="py-spy: sample every non-idle thread, GIL holder or not (waits count as busy)",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hermes-profile-") as directory:
        database = Database(Path(directory))
        users = 4 if args.phase == "churn" else 1
        tokens = [database.token(f"bench-profile-{index}") for index in range(users)]
        out = args.out or Path(directory) / "profile.out"
        # Long churn runs keep more detached sessions per user than the default quota.
        options = {
            **json.loads(load.GATEWAY_ENV["HERMES_GATEWAY_OPTIONS"]),
            "MAX_SESSIONS_PER_USER": 1_000_000,
        }
        env = target_env(args.target, 8)
        if args.target == "gateway":
            env["HERMES_GATEWAY_OPTIONS"] = json.dumps(options)
        app = APPS[args.target]

        def run() -> dict:
            return asyncio.run(drive(server, tokens, args.phase, args.duration))

        if args.sampler == "cprofile":
            server = CProfiledServer(
                database, server=args.server, app=app, profile_path=out, env=env
            )
            with server:
                figures = run()
            summary = summarize_pstats(out, args.top)
        else:
            server = GatewayServer(database, server=args.server, app=app, env=env)
            with server:
                figures = py_spy_profile(server, run, out, gil_only=not args.waiting)
            summary = summarize_collapsed(out, args.top)
        print(f"{args.phase} on {args.target} ({args.server}) under {args.sampler}: {figures}")
        print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
