"""
10 000 hostile frames against real daphne over 8 connections of two users: the server keeps
answering, crashes no handler, leaks no process, and every input gets an answer (or, for
frames over the size limit and invalid UTF-8, a close). ``pytest -s`` prints the tally.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from typing import Any

import psutil
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from tests.support.live import ws_rpc
from tests.support.protocol import V1_METHODS
from tests.support.servers import Database, GatewayServer

pytestmark = pytest.mark.live

FRAMES = 10_000
CONNECTIONS = 8
#: Paced connections stay a little under the server's default 200 messages/s; one floods.
PACED_RATE = 170.0
MAX_FRAME = 1024 * 1024
MAX_MESSAGE = 256 * 1024

METHODS = list(V1_METHODS)
WEIRD = ["", "\x00", "\ud800", "\udfff", "\U0010ffff", "é", "\u202e", "\n", "$(id)", "; rm -rf /"]


class Fuzzer:
    """A seeded generator of hostile frames; ``own`` and ``foreign`` are session ids."""

    def __init__(self, seed: int, own: list[str], foreign: list[str]) -> None:
        self.rng = random.Random(seed)
        self.own = own
        self.foreign = foreign
        self.ids = 0

    def value(self, depth: int = 0) -> Any:
        r = self.rng
        kind = r.randrange(12 if depth < 3 else 9)
        if kind == 0:
            return None
        if kind == 1:
            return r.choice([True, False])
        if kind == 2:
            return r.randint(-(2**70), 2**70)
        if kind == 3:
            return r.choice([10**400, -(10**400), 2**63, -1, 0])
        if kind == 4:
            return r.choice([1e308, -0.0, 3.14, float("inf"), float("nan")])
        if kind == 5:
            return "".join(chr(r.randint(0, 0x10FFFF)) for _ in range(r.randint(0, 12)))
        if kind == 6:
            return r.choice(WEIRD)
        if kind == 7:
            return "x" * r.choice([0, 1, 200, 1001, 4001, 33000 if r.random() < 0.05 else 0])
        if kind == 8:
            return r.choice(self.own + self.foreign + ["f" * 32, "../../etc/passwd"])
        if kind == 9:
            return [self.value(depth + 1) for _ in range(r.randint(0, 3))]
        return {self.word(): self.value(depth + 1) for _ in range(r.randint(0, 3))}

    def word(self) -> str:
        return self.rng.choice(
            [
                "session_id",
                "text",
                "title",
                "last_seq",
                "command",
                "request_id",
                "choice",
                "answer",
                "x",
            ]
        )

    def params(self, method: str) -> Any:
        r = self.rng
        if r.random() < 0.1:
            return self.value()
        params: dict[str, Any] = {}
        if method not in ("gateway.ping", "session.list", "commands.catalog", "session.create"):
            roll = r.random()
            if method == "session.close" and roll < 0.5:
                # Closing an own session ends its slash worker: keep that churn rare.
                roll = 0.5 + roll * (0.05 / 0.5) if r.random() < 0.9 else roll
            params["session_id"] = (
                r.choice(self.own)
                if roll < 0.5
                else r.choice(self.foreign)
                if roll < 0.7
                else self.value()
            )
        if method == "prompt.submit":
            params["text"] = r.choice(
                [
                    "hello there",
                    "!tool ls",
                    "!clarify why?",
                    "!sleep 0.2 slow words",
                    "x " * 50,
                    self.value(),
                ]
            )
        elif method == "slash.exec":
            params["command"] = r.choice(
                [
                    "/help",
                    "/status",
                    "/title fuzz",
                    "/history",
                    "/nosuch",
                    "/skin dark",
                    "/title $(touch /tmp/fuzzed)",
                    "help",
                    self.value(),
                ]
            )
        elif method in ("approval.respond", "clarify.respond"):
            params["request_id"] = self.value() if r.random() < 0.5 else "f" * 32
            params["choice"] = r.choice(["once", "session", "deny", self.value()])
            params["answer"] = self.value()
        elif method == "complete.slash":
            params["text"] = r.choice(["/", "/he", "nope", self.value()])
        elif method == "session.create":
            params["title"] = self.value() if r.random() < 0.3 else "fuzz"
        elif method == "session.resume" and r.random() < 0.5:
            params["last_seq"] = self.value()
        for _ in range(r.randint(0, 2)):
            params[self.word()] = self.value()
        return params

    def request(self) -> str:
        r = self.rng
        self.ids += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": r.choice(METHODS)}
        message["params"] = self.params(message["method"])
        roll = r.random()
        if roll < 0.85:
            message["id"] = self.ids if r.random() < 0.7 else f"s{self.ids}"
        elif roll < 0.9:
            message["id"] = self.value()
        # else: a notification
        if r.random() < 0.05:
            message["jsonrpc"] = self.value()
        if r.random() < 0.03:
            message["method"] = self.value()
        if r.random() < 0.03:
            return json.dumps([message])
        return json.dumps(message, ensure_ascii=r.random() < 0.5)

    def garbage(self) -> str:
        r = self.rng
        kind = r.randrange(8)
        if kind == 0:
            return self.request()[: r.randint(0, 40)]
        if kind == 1:
            return "[" * r.choice([10, 999, 1001, 5000, 100_000 if r.random() < 0.1 else 10])
        if kind == 2:
            depth = r.choice([10, 999, 1001, 3000])
            return '{"a":' * depth + "1" + "}" * r.randint(depth - 1, depth)
        if kind == 3:
            return "9" * r.randint(1, 10_000)
        if kind == 4:
            return "".join(chr(r.randint(1, 0xD7FF)) for _ in range(r.randint(1, 50)))
        if kind == 5:
            return json.dumps(self.value())
        if kind == 6:
            return '{"jsonrpc":"2.0","id":1,"id":"dup","method":"gateway.ping","params":null}'
        return "\x00" * r.randint(1, 10)

    def frame(self, index: int = -1, special: str = "") -> tuple[str, str | bytes]:
        """("text" | "binary" | "bad-utf8", payload): mostly small multi-line frames; the
        ``special`` frame (one per connection, at a fixed index) tests a hard limit. Text
        that UTF-8 cannot carry (lone surrogates) goes out as bytes in a binary frame."""
        kind, payload = self._special(special) if special else self._frame()
        if kind == "text":
            try:
                payload.encode("utf-8")
            except UnicodeEncodeError:
                return "binary", payload.encode("utf-8", "surrogatepass")
        return kind, payload

    def _special(self, special: str) -> tuple[str, str | bytes]:
        if special == "frame":
            return "text", "x" * (MAX_FRAME + 1)  # over the frame limit: the socket closes
        if special == "utf8":
            # Invalid UTF-8 in a text frame: a WebSocket protocol error (closed with 1007).
            return "bad-utf8", self.request().encode("utf-8", "surrogatepass") + b"\xed\xa0\x80"
        if special == "message":
            return "text", self.request() + "\n" + '"' + "y" * (MAX_MESSAGE + 10) + '"'
        return "text", "\n".join(self.request() for _ in range(101))  # over 100 lines

    def _frame(self) -> tuple[str, str | bytes]:
        r = self.rng
        if r.random() < 0.025:
            return "binary", self.request().encode("utf-8", "surrogatepass") + r.randbytes(8)
        lines = [
            self.request() if r.random() < 0.75 else self.garbage()
            for _ in range(r.choice([1, 1, 1, 2, 3, 5]))
        ]
        separator = r.choice(["\n", "\r\n", "\n \n", "\n\t\n"])
        return "text", separator.join(lines)


class Tally:
    """What came back: results, errors by code, closes by code."""

    def __init__(self) -> None:
        self.frames = 0
        self.results = 0
        self.errors: Counter = Counter()
        self.closes: Counter = Counter()
        self.events = 0
        self.samples: dict[int, Counter] = {}

    def record(self, text: str | bytes) -> dict[str, Any]:
        message = json.loads(text)
        if message.get("method") == "event":
            self.events += 1
        elif "error" in message:
            self.errors[message["error"]["code"]] += 1
            self.samples.setdefault(message["error"]["code"], Counter())[
                message["error"]["message"][:100]
            ] += 1
        else:
            self.results += 1
        return message


#: Frames that test a hard limit, by connection: (index of the frame, which limit).
SPECIAL = {
    1: (300, "frame"),
    2: (300, "utf8"),
    3: (300, "frame"),
    4: (300, "message"),
    5: (300, "lines"),
    6: (300, "message"),
    7: (300, "lines"),
}


async def fuzz_connection(
    url: str,
    token: str,
    fuzzer: Fuzzer,
    frames: int,
    tally: Tally,
    *,
    paced: bool,
    special: tuple[int, str] = (-1, ""),
) -> None:
    """Send ``frames`` fuzzed frames, reading everything; reconnect after a close."""
    headers = {"Authorization": f"Bearer {token}"}
    sent = 0
    interval = 1.0 / PACED_RATE
    while sent < frames:
        async with ws_connect(url, additional_headers=headers, max_size=None) as ws:
            tally.record(await ws.recv())  # gateway.ready

            async def reader() -> None:
                async for text in ws:
                    tally.record(text)

            reading = asyncio.create_task(reader())
            started = time.monotonic()
            try:
                while sent < frames:
                    kind, payload = fuzzer.frame(special=special[1] if sent == special[0] else "")
                    sent += 1
                    tally.frames += 1
                    await ws.send(payload, text=kind != "binary")
                    newline = b"\n" if isinstance(payload, bytes) else "\n"
                    lines = len([line for line in payload.split(newline) if line.strip()])
                    if paced:
                        # Messages, not frames, spend rate tokens: pace by lines.
                        started += interval * lines
                        await asyncio.sleep(max(0.0, started - time.monotonic()))
                    elif sent % 50 == 0:
                        await asyncio.sleep(0)
                    if kind == "bad-utf8" or len(payload) > MAX_FRAME:
                        break  # the server closes this socket (see the closes below)
                # The last answer: everything before it has been answered (in order).
                await ws.send('{"jsonrpc":"2.0","id":"last","method":"gateway.ping"}')
                await asyncio.wait_for(reading, 30)
            except ConnectionClosed:
                pass
            except TimeoutError:
                pass  # "last" was answered or the socket closed; see below
            finally:
                reading.cancel()
                await asyncio.gather(reading, return_exceptions=True)
            if ws.close_code not in (None, 1000):
                tally.closes[ws.close_code] += 1
            if ws.close_code is None:
                return


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    return Database(tmp_path_factory.mktemp("fuzz"))


async def test_ten_thousand_fuzzed_frames_leave_the_server_answering(database):
    """Tests that 10 000 hostile frames over 8 connections (two users) leave daphne alive and
    answering gateway.ping, with no handler crash and no slash worker left running."""
    tokens = {"alice": database.token("alice"), "bob": database.token("bob")}
    with GatewayServer(database) as server:
        sessions: dict[str, list[str]] = {}
        for user, token in tokens.items():
            async with ws_rpc(server.url, token) as rpc:
                sessions[user] = [
                    (await rpc.call("session.create", {"title": f"{user} {i}"}))["session_id"]
                    for i in range(2)
                ]
        rss_before = server.rss()
        tally = Tally()
        per_connection = FRAMES // CONNECTIONS
        jobs = []
        for index in range(CONNECTIONS):
            user, other = ("alice", "bob") if index % 2 == 0 else ("bob", "alice")
            fuzzer = Fuzzer(seed=index, own=sessions[user], foreign=sessions[other])
            jobs.append(
                fuzz_connection(
                    server.url,
                    tokens[user],
                    fuzzer,
                    per_connection,
                    tally,
                    paced=index != 0,
                    special=SPECIAL.get(index, (-1, "")),
                )
            )
        started = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*jobs), 120)
        elapsed = time.monotonic() - started

        assert server.process.poll() is None, "daphne died"
        async with ws_rpc(server.url, tokens["alice"]) as rpc:
            assert await rpc.call("gateway.ping") == {"pong": True}
        for token in tokens.values():
            async with ws_rpc(server.url, token) as rpc:
                for session in await rpc.all_sessions():
                    if session["status"] != "closed":
                        await rpc.call("session.close", {"session_id": session["session_id"]})
        for _ in range(50):
            if not server.slash_workers():
                break
            await asyncio.sleep(0.1)
        assert server.slash_workers() == set()
        children = psutil.Process(server.pid).children(recursive=True)
        assert [c for c in children if c.status() != psutil.STATUS_ZOMBIE] == []
        rss_after = server.rss()
        log = server.log()

    print(
        f"\nlive fuzz: {tally.frames} frames over {CONNECTIONS} connections in {elapsed:.1f}s;"
        f" {tally.results} results, {sum(tally.errors.values())} errors by code"
        f" {dict(sorted(tally.errors.items()))}, {tally.events} events,"
        f" closes by code {dict(tally.closes)};"
        f" server RSS {rss_before / 2**20:.1f} -> {rss_after / 2**20:.1f} MiB"
    )
    assert tally.frames == FRAMES
    assert tally.errors[-32603] == 0, f"a handler crashed: {tally.samples.get(-32603)}"
    assert "Traceback" not in log
    # Oversized frames: 4013 (daphne cannot send 1009). Invalid UTF-8: autobahn drops the
    # TCP connection without a close handshake (1006), before the gateway sees the frame.
    assert set(tally.closes) <= {4013, 1006}
    assert tally.closes[4013] == 2
    for code in (-32700, -32600, -32601, -32602, 4001, 4013, 4029):
        assert tally.errors[code] > 0, f"no {code} seen: the fuzzer missed a path"
