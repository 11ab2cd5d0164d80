"""
Property tests: arbitrary text and JSON (wrong types, huge numbers, deep nesting, unicode,
NUL, lone surrogates) through the shared dispatch only ever yields well-formed JSON-RPC
responses, one per request line, no handler crashes, and a dispatcher that still answers.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from channels.layers import channel_layers, get_channel_layer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway_app.rpc.context import CallContext, Caller
from gateway_app.rpc.dispatch import dispatch_frame, registered_methods
from gateway_app.rpc.protocol import Request, encode, parse_frame
from gateway_app.sessions.host import get_host, reset_host
from gateway_app.slash import client as slash_client
from gateway_app.transport.limits import InputGuard

pytestmark = pytest.mark.django_db(transaction=True)

KNOWN_SESSION = "$SID"  # replaced by a real session id of the fuzzing user
WEIRD_TEXT = ["", "\x00", "\ud800", "\udfff", "\U0010ffff", "é", "\u202e", "/", "\n", "!tool x"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**18, max_value=10**400),
    st.integers(min_value=-(10**400), max_value=-(10**18)),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.text(st.characters(codec="utf-8", exclude_categories=()), max_size=20),
    st.sampled_from(WEIRD_TEXT),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)

PARAM_NAMES = [
    "session_id",
    "title",
    "last_seq",
    "text",
    "command",
    "request_id",
    "choice",
    "answer",
]
param_values = st.one_of(
    json_values,
    st.just(KNOWN_SESSION),
    st.sampled_from(["once", "session", "deny", "/help", "/title x", "/status", "!clarify q"]),
    st.text(st.characters(codec="utf-8"), max_size=60).map(lambda t: "/" + t),
)
params = st.one_of(
    json_values,
    st.dictionaries(st.sampled_from(PARAM_NAMES), param_values, max_size=4),
    st.dictionaries(st.sampled_from(PARAM_NAMES), param_values, min_size=2, max_size=5),
)


def mostly(draw, usual, unusual, odds: int = 6):
    """Draw from ``usual`` except one time in ``odds``: most messages reach a handler."""
    return draw(unusual if draw(st.integers(0, odds - 1)) == 0 else usual)


@st.composite
def messages(draw) -> Any:
    message: dict[str, Any] = {}
    message["jsonrpc"] = mostly(draw, st.just("2.0"), json_values)
    if draw(st.integers(0, 4)):
        message["id"] = mostly(draw, st.one_of(st.integers(), st.text(max_size=8)), json_values)
    if draw(st.integers(0, 8)):
        message["method"] = mostly(draw, st.sampled_from(sorted(registered_methods())), json_values)
    if draw(st.integers(0, 3)):
        message["params"] = draw(params)
    if draw(st.integers(0, 12)) == 0:
        return draw(st.one_of(json_values, st.lists(st.just(message), max_size=3)))
    return message


@st.composite
def requests(draw) -> dict[str, Any]:
    """Well-formed envelopes for every method, with hostile params: they reach handlers."""
    message = {
        "jsonrpc": "2.0",
        "method": draw(st.sampled_from(sorted(registered_methods()))),
        "params": draw(st.dictionaries(st.sampled_from(PARAM_NAMES), param_values, max_size=5)),
    }
    if draw(st.integers(0, 3)):
        message["params"]["session_id"] = draw(
            st.one_of(
                st.just(KNOWN_SESSION),
                st.text("0123456789abcdef", min_size=32, max_size=32),
                json_values,
            )
        )
    if draw(st.integers(0, 5)):
        message["id"] = draw(st.one_of(st.integers(), st.text(max_size=8)))
    return message


def dumps(message: Any, ascii_only: bool) -> str:
    return json.dumps(message, ensure_ascii=ascii_only)  # NaN/Infinity too: loads accepts them


raw_lines = st.one_of(
    st.text(max_size=60),
    st.text(st.characters(codec="utf-8", exclude_categories=()), max_size=30),
    st.sampled_from(WEIRD_TEXT),
    st.integers(1, 60_000).map(lambda depth: "[" * depth),
    st.integers(1, 3000).map(lambda depth: '{"a":' * depth + "1" + "}" * depth),
    st.integers(1, 5000).map(lambda digits: "9" * digits),
    st.just('{"jsonrpc":"2.0","id":1,"method":"gateway.ping","params":{"x":1e999}}'),
    st.just('{"jsonrpc":"2.0","id":1,"id":2,"method":"gateway.ping"}'),
    st.just('{"jsonrpc":"2.0","id":"\\ud800","method":"gateway.ping"}'),
)


@st.composite
def frames(draw) -> str:
    encoded = st.tuples(messages(), st.booleans()).map(lambda m: dumps(*m))
    valid = st.tuples(requests(), st.booleans()).map(lambda m: dumps(*m))
    line = st.one_of(valid, valid, valid, encoded, raw_lines)
    lines = draw(st.lists(line, min_size=1, max_size=8))
    separator = draw(st.sampled_from(["\n", "\r\n", "\n\n  ", "\n\x00\n"]))
    return separator.join(lines)


### The harness: one event loop and session host for every example ###


class Harness:
    """Runs frames through the shared dispatch on one loop, as alice, and checks replies."""

    def __init__(self, user) -> None:
        channel_layers.backends.clear()
        self.loop = asyncio.new_event_loop()
        self.ctx: CallContext | None = None
        self.session_id = ""
        self.outcomes: dict[int | str, int] = {}
        self.methods: dict[str, int] = {}
        self.frames = 0
        self.loop.run_until_complete(self._start(user))

    async def _start(self, user) -> None:
        layer = get_channel_layer()
        self.ctx = CallContext(
            caller=Caller(user.pk, user.get_username()),
            channel_name=await layer.new_channel("fuzz"),
            transport="fuzz",
        )
        host = await get_host()
        host.connection_opened(self.ctx)
        self.session_id = (await host.create(self.ctx, "fuzz")).id
        # Drain the connection's channel like a consumer would, so the layer never fills.
        self._drain = asyncio.get_running_loop().create_task(self._drain_events(layer))

    async def _drain_events(self, layer) -> None:
        while True:
            await layer.receive(self.ctx.channel_name)

    def run(self, text: str, *, guarded: bool = False) -> list[dict[str, Any]]:
        text = text.replace(KNOWN_SESSION, self.session_id)
        return self.loop.run_until_complete(self._run(text, guarded))

    async def _run(self, text: str, guarded: bool) -> list[dict[str, Any]]:
        frame = InputGuard(self.ctx).frame(text) if guarded else parse_frame(text)
        responses = await asyncio.wait_for(dispatch_frame(self.ctx, frame), 30)
        self.frames += 1
        # Notifications (well-formed envelopes without id) are never answered, even when
        # refused for their params or the rate.
        answered = [item for item in frame.items if not item.notification]
        assert len(responses) == len(answered)
        for item, response in zip(answered, responses, strict=True):
            if isinstance(item, Request):
                self.methods[item.method] = self.methods.get(item.method, 0) + 1
            check_response(response)
            outcome = response["error"]["code"] if "error" in response else "ok"
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        return responses

    def close(self) -> None:
        async def stop() -> None:
            self._drain.cancel()
            await asyncio.gather(self._drain, return_exceptions=True)
            host = await get_host()
            await host.connection_closed(self.ctx)
            await reset_host()

        self.loop.run_until_complete(stop())
        self.loop.close()
        channel_layers.backends.clear()


def check_response(response: dict[str, Any]) -> None:
    """A well-formed JSON-RPC 2.0 response: encodable, id, exactly one of result/error."""
    text = encode(response)
    decoded = json.loads(text)
    assert decoded["jsonrpc"] == "2.0"
    assert "id" in decoded
    assert decoded["id"] is None or isinstance(decoded["id"], (int, str))
    assert not isinstance(decoded["id"], bool)
    assert ("result" in decoded) != ("error" in decoded)
    if "error" in decoded:
        error = decoded["error"]
        assert isinstance(error["code"], int) and not isinstance(error["code"], bool)
        assert isinstance(error["message"], str) and error["message"]
    else:
        assert isinstance(decoded["result"], dict)


@pytest.fixture
def harness(alice):
    running = Harness(alice)
    yield running
    running.close()
    outcomes = ", ".join(f"{k}: {v}" for k, v in sorted(running.outcomes.items(), key=str))
    print(f"\nfuzzed {running.frames} frames; responses by outcome: {outcomes}")
    print(f"requests reaching dispatch by method: {running.methods}")
    leftover = [pid for pid in slash_client.live_worker_pids()]
    assert not leftover, f"slash workers left running: {leftover}"


FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,  # no example database written into the repository
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(text=frames())
def test_arbitrary_frames_get_only_well_formed_responses(harness, text):
    """Tests that any frame through the shared dispatch gets one well-formed response per
    request line and crashes no handler; gateway.ping still answers."""
    harness.run(text)
    assert harness.ctx.counters.get("dispatch_crashes", 0) == 0
    ping = harness.run('{"jsonrpc":"2.0","id":"p","method":"gateway.ping"}')
    assert ping == [{"jsonrpc": "2.0", "id": "p", "result": {"pong": True}}]


@pytest.fixture
def small_limits(limits):
    limits(MAX_MESSAGE_BYTES=200, MAX_LINES_PER_FRAME=3, RATE_LIMIT_BURST=4)


@FUZZ
@given(text=frames())
def test_arbitrary_frames_through_the_input_guard(small_limits, harness, text):
    """Tests that the same property holds with the input limits applied (small line,
    line-count and burst limits, so 4013 and 4029 answers are exercised too)."""
    harness.run(text, guarded=True)
    assert harness.ctx.counters.get("dispatch_crashes", 0) == 0


@FUZZ
@given(message=requests(), ascii_only=st.booleans())
def test_every_method_with_hostile_params_answers_well_formed(harness, message, ascii_only):
    """Tests that each method, given wrong types, huge numbers, unicode, NUL and lone
    surrogates in its params (sometimes for a real session), answers a well-formed response
    without crashing its handler."""
    message.setdefault("id", 1)
    harness.run(dumps(message, ascii_only))
    assert harness.ctx.counters.get("dispatch_crashes", 0) == 0
