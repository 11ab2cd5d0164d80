"""
Limits on hostile or runaway clients: input size and rate per connection, rate and
connections per user, and a bounded outgoing queue that notices a client which stopped
reading. Plain logic shared by the WebSocket consumer and the stdio transport (the per-user
session quota is ``sessions.quota``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..conf import setting
from ..metrics import families
from ..rpc.codes import CLOSE_TOO_LARGE
from ..rpc.context import CallContext
from ..rpc.errors import RateLimited, TooLarge
from ..rpc.protocol import (
    Frame,
    Rejected,
    Request,
    encode,
    error_message,
    parse_line,
    split_lines,
    utf8_length,
)

logger = logging.getLogger(__name__)

#: WebSocket close code (PROTOCOL.md) for an oversized frame; CLOSE_MESSAGE_TOO_LARGE is the
#: same in the application range, for servers that refuse to send 1009 (daphne).
CLOSE_FRAME_TOO_LARGE = 1009
CLOSE_MESSAGE_TOO_LARGE = CLOSE_TOO_LARGE

#: Bytes the ASGI server may hold unsent for one connection before the outbox stops handing
#: it frames (they wait in the outbox, which is bounded, instead).
SERVER_BUFFER_HIGH_WATER = 256 * 1024
#: A frame goes to the ASGI server at once (no task switch) while the server holds at most
#: this many bytes unsent for the connection, this frame included: few enough that no
#: server's send waits on the socket (asyncio transports pause writers at 64 KiB).
DIRECT_WRITE_MAX = 16 * 1024
#: Limit warnings are written at most this often per connection and kind.
WARN_INTERVAL_S = 5.0


### Token bucket ###

#: Tokens a bucket may be short and still grant a request: far below one request's cost.
TOKEN_EPSILON = 1e-6


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; a rate of 0 or less never limits."""

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = float(rate)
        self.burst = max(float(burst), 1.0)
        self.clock = clock
        self.tokens = self.burst
        self.updated = clock()
        #: When the tokens promised to the retries ``book`` handed out will have accrued.
        self.booked_until = self.updated

    @property
    def unlimited(self) -> bool:
        return self.rate <= 0

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def take(self, amount: float = 1.0) -> bool:
        """Spend ``amount`` tokens if available."""
        if self.unlimited:
            return True
        self._refill()
        # A hair of tolerance: a refill computed from two large clock readings can come out a
        # rounding error short of the tokens a client that waited its hint is owed.
        if self.tokens >= amount - TOKEN_EPSILON:
            self.tokens = max(0.0, self.tokens - amount)
            return True
        return False

    def delay(self, amount: float = 1.0) -> float:
        """Seconds until ``amount`` tokens are available (0 if they are now)."""
        if self.unlimited:
            return 0.0
        self._refill()
        return max(0.0, (amount - self.tokens) / self.rate)

    def book(self, amount: float = 1.0) -> float:
        """
        Seconds a refused request of ``amount`` tokens should wait before it comes back: a
        slot of its own after those already handed out, so the requests refused together
        (one user's many sockets) do not all come back at once and all but one be refused
        again. Slots reach at most a full bucket's refill time ahead.
        """
        if self.unlimited:
            return 0.0
        wait = self.delay(amount)
        now = self.updated
        if self.booked_until > now:
            wait = max(wait, self.booked_until - now + amount / self.rate)
        wait = min(wait, max(self.burst, amount) / self.rate)
        self.booked_until = now + wait
        return wait

    async def wait(self, amount: float = 1.0) -> None:
        """Sleep until ``amount`` tokens are available, then spend them (throttling)."""
        while True:
            if self.take(amount):
                return
            await asyncio.sleep(self.delay(amount))


### Logging limit hits ###


class LimitLog:
    """Counts every limit hit on the connection and warns at most every few seconds per kind."""

    def __init__(self, ctx: CallContext, interval: float = WARN_INTERVAL_S) -> None:
        self.ctx = ctx
        self.interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def hit(self, kind: str, detail: str) -> None:
        families.count_limit(kind)
        self.ctx.count("limit_hits")
        self.ctx.count(f"limit_{kind}")
        now = time.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return
        self._last[kind] = now
        suppressed = self._suppressed.pop(kind, 0)
        logger.warning(
            "limit %s hit by user=%s peer=%s transport=%s: %s%s",
            kind,
            self.ctx.caller.username,
            self.ctx.peer or "-",
            self.ctx.transport,
            detail,
            f" ({suppressed} more since last warning)" if suppressed else "",
        )


### Input limits ###


@dataclass(frozen=True, slots=True)
class InputLimits:
    """The input limits in force, read from settings when a connection opens."""

    frame_bytes: int
    message_bytes: int
    lines_per_frame: int
    rate_per_s: float
    burst: int
    user_rate_per_s: float
    user_burst: int

    @classmethod
    def from_settings(cls) -> InputLimits:
        return cls(
            frame_bytes=setting("MAX_FRAME_BYTES"),
            message_bytes=setting("MAX_MESSAGE_BYTES"),
            lines_per_frame=setting("MAX_LINES_PER_FRAME"),
            rate_per_s=setting("RATE_LIMIT_PER_S"),
            burst=setting("RATE_LIMIT_BURST"),
            user_rate_per_s=setting("USER_RATE_LIMIT_PER_S"),
            user_burst=setting("USER_RATE_LIMIT_BURST"),
        )


#: What a message of these methods spends from the user's bucket (any other: 1): each starts
#: work (a stored row, a cold start, a turn, a slash process) costing many pings, so one
#: account looping them cannot take the worker from other users.
USER_RATE_COSTS: dict[str, float] = {
    "session.create": 10,
    "session.resume": 10,
    "session.close": 10,
    "prompt.submit": 10,
    "slash.exec": 10,
}


class InputGuard:
    """
    Applies one connection's input limits to its frames before dispatch. Over-limit lines
    become ``Rejected`` items, so the shared dispatch answers them like any other error.
    ``user_bucket`` is the bucket the user's connections on this worker share
    (``user_buckets``), set by the transport once the connection is counted.
    """

    def __init__(self, ctx: CallContext, limits: InputLimits | None = None) -> None:
        self.ctx = ctx
        self.limits = limits or InputLimits.from_settings()
        self.bucket = TokenBucket(self.limits.rate_per_s, self.limits.burst)
        self.user_bucket: TokenBucket | None = None
        self.log = LimitLog(ctx)

    def over_rate(self, cost: float = 1.0) -> str:
        """Spend a line's tokens (``cost`` of the user's): "" when within both rates, else
        the limit it is over."""
        if not self.bucket.take():
            return "rate"
        user = self.user_bucket
        if user is not None and not user.take(min(cost, user.burst)):
            return "rate_per_user"
        return ""

    async def wait(self) -> None:
        """Throttle instead of refusing (stdio): sleep until both buckets allow a line."""
        await self.bucket.wait()
        if self.user_bucket is not None:
            await self.user_bucket.wait()

    def frame_too_large(self, size: int) -> bool:
        """True (and logged) when a frame of ``size`` bytes must close the socket (1009)."""
        limit = self.limits.frame_bytes
        if limit and size > limit:
            self.log.hit("frame_bytes", f"frame of {size} bytes > {limit}")
            return True
        return False

    def frame(self, text: str) -> Frame:
        """
        Parse a WebSocket frame under the limits. More lines than allowed: one 4013 (id
        null) and nothing runs. Each line costs a rate token; an oversized line gets 4013
        (id null), a line over the rate 4029 with its id (a notification: nothing); the other
        lines parse normally.
        """
        lines = split_lines(text)
        max_lines = self.limits.lines_per_frame
        if max_lines and len(lines) > max_lines:
            self.over_rate()
            self.log.hit("lines_per_frame", f"{len(lines)} lines in one frame > {max_lines}")
            error = TooLarge(
                f"Too many messages in one frame: {len(lines)}, at most {max_lines};"
                " none of them was executed",
                {"limit": "lines_per_frame", "max": max_lines, "lines": len(lines)},
            )
            return Frame([Rejected(error)])
        return Frame([self.line(line, rated=True) for line in lines])

    def line(self, line: str, *, rated: bool = False) -> Request | Rejected:
        """
        One message under the size limit; ``rated``: it spends rate tokens (per connection
        one, of the user's its method's ``USER_RATE_COSTS``), and over a rate it is answered
        4029 with its id, or dropped unanswered (logged all the same) as a notification.
        """
        limit = self.limits.message_bytes
        if limit and len(line) > limit // 4 and (size := utf8_length(line)) > limit:
            if rated:
                self.over_rate()
            self.log.hit("message_bytes", f"message of {size} bytes > {limit}")
            return Rejected(self.too_large_message())
        item = parse_line(line)
        rate_limited, cost = "", 1.0
        if rated:
            cost = USER_RATE_COSTS.get(item.method, 1) if isinstance(item, Request) else 1
            rate_limited = self.over_rate(cost)
        if rate_limited:
            error = self._over_rate(rate_limited, cost, answered=not item.notification)
            return Rejected(error, item.id, notification=item.notification)
        return item

    def _over_rate(self, limit: str, cost: float, *, answered: bool) -> RateLimited:
        """
        The 4029 of a line over ``limit`` ("rate", this connection's, or "rate_per_user",
        spending ``cost``), logged. An answered line books its retry slot; a notification
        gets no answer, so no slot is kept for it.
        """
        if limit == "rate_per_user" and self.user_bucket is not None:
            bucket, amount = self.user_bucket, cost
            rate, burst = self.limits.user_rate_per_s, self.limits.user_burst
            across = " across the user's connections"
            across_all = " across all of this user's connections"
        else:
            bucket, amount = self.bucket, 1.0
            rate, burst = self.limits.rate_per_s, self.limits.burst
            across = across_all = ""
        amount = min(amount, bucket.burst)
        retry = _in_ms(bucket.book(amount) if answered else bucket.delay(amount))
        self.log.hit(limit, f"over {rate:g} messages/s (burst {burst}){across}")
        return RateLimited(
            f"Rate limit exceeded: at most {rate:g} messages per second (burst {burst})"
            f"{across_all}; retry after {retry:g}s",
            {"limit": limit, "retry_after_s": retry},
        )

    def too_large_message(self) -> TooLarge:
        limit = self.limits.message_bytes
        return TooLarge(
            f"Message too large: at most {limit} bytes per JSON-RPC message",
            {"limit": "message_bytes", "max": limit},
        )


def _in_ms(seconds: float) -> float:
    """``seconds`` rounded up to the millisecond: a client that waits the hint finds its
    tokens there, never a fraction of one short (and a whole millisecond is not added to a
    wait that is one already, such as 0.025 s, whose product with 1000 is not exact)."""
    return math.ceil(round(seconds * 1000, 6)) / 1000


def cap_response(response: dict[str, Any], text: str, limit: int, log: LimitLog) -> str:
    """
    An encoded response too large for one frame is replaced by a 4013 error with its id,
    so the client gets an answer instead of waiting forever on a frame the server refuses.
    """
    if not limit or len(text) <= limit // 4 or (size := utf8_length(text)) <= limit:
        return text
    log.hit("response_bytes", f"response of {size} bytes > {limit}")
    error = TooLarge(
        f"Response too large: {size} bytes, at most {limit} per frame",
        {"limit": "frame_bytes", "max": limit, "size": size},
    )
    return encode(error_message(response.get("id"), error))


### Connections per user ###


class UserConnections:
    """Open connections per user on this worker (the ``MAX_CONNECTIONS_PER_USER`` cap)."""

    def __init__(self) -> None:
        self._by_user: dict[int, set[str]] = {}

    def acquire(self, user_id: int, key: str, limit: int) -> bool:
        """Count ``key`` for the user unless ``limit`` (0: none) is reached."""
        keys = self._by_user.setdefault(user_id, set())
        if limit and len(keys) >= limit and key not in keys:
            return False
        keys.add(key)
        return True

    def release(self, user_id: int, key: str) -> None:
        keys = self._by_user.get(user_id)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_user[user_id]

    def count(self, user_id: int) -> int:
        return len(self._by_user.get(user_id, ()))


#: This worker's registry (one event loop per worker; no locking needed).
user_connections = UserConnections()


### Rate per user ###


class UserBuckets:
    """
    One token bucket per user with a connection open on this worker, shared by all of them
    (``USER_RATE_LIMIT_PER_S``): many sockets of one account get no more than one account's
    share. A bucket goes with its user's last connection, so memory follows open users only.
    """

    def __init__(self) -> None:
        self._by_user: dict[int, tuple[TokenBucket, set[str]]] = {}

    def acquire(self, user_id: int, key: str, limits: InputLimits) -> TokenBucket:
        """The user's bucket (created with ``limits`` if it is the first connection)."""
        entry = self._by_user.get(user_id)
        if entry is None:
            entry = (TokenBucket(limits.user_rate_per_s, limits.user_burst), set())
            self._by_user[user_id] = entry
        entry[1].add(key)
        return entry[0]

    def release(self, user_id: int, key: str) -> None:
        entry = self._by_user.get(user_id)
        if entry is not None:
            entry[1].discard(key)
            if not entry[1]:
                del self._by_user[user_id]

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._by_user

    def __len__(self) -> int:
        return len(self._by_user)


#: This worker's per-user buckets (one event loop per worker; no locking needed).
user_buckets = UserBuckets()


### Outgoing backpressure ###

#: How many bytes the ASGI server holds unsent for the connection (``adapters.daphne``).
BufferProbe = Callable[[], int]


class Outbox:
    """
    A connection's outgoing frames, in order, drained by one task. ``put`` never blocks: it
    returns False when the client is too far behind (``max_frames`` or ``max_bytes`` queued,
    while the server still holds ``high_water`` bytes unsent), and the caller closes.
    """

    def __init__(
        self,
        write: Callable[[str], Awaitable[None]],
        *,
        max_frames: int,
        max_bytes: int,
        probe: BufferProbe | None = None,
        high_water: int = SERVER_BUFFER_HIGH_WATER,
    ) -> None:
        self._write = write
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self.probe = probe
        self.high_water = high_water
        self._queue: deque[str] = deque()
        self._bytes = 0
        self._wakeup = asyncio.Event()
        #: Set after each frame the drain task writes (``flush`` waits on it).
        self._flushed = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._started = False
        self._writing = False

    @property
    def frames(self) -> int:
        return len(self._queue)

    @property
    def bytes(self) -> int:
        return self._bytes

    def start(self) -> None:
        """Allow draining. The drain task itself is only created once a frame must wait:
        a client that keeps up is served by the direct path and never needs one."""
        self._started = True
        if self._queue:
            self._ensure_drain()

    def _ensure_drain(self) -> None:
        if self._task is None and self._started:
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def send(self, text: str) -> bool:
        """
        Write ``text`` now if nothing is waiting and the server holds little unsent (at
        most ``DIRECT_WRITE_MAX`` with it, so the write cannot block, and order is kept);
        else queue it like ``put``. The direct path saves a task (and a task switch) per
        frame for a client that keeps up, such as the first frame after the handshake.
        """
        if (
            self._queue
            or self._writing
            or self.probe is None
            or self.probe() + len(text) > DIRECT_WRITE_MAX
        ):
            return self.put(text)
        await self._write_one(text)
        return True

    async def _write_one(self, text: str) -> None:
        """Write one frame, marked in flight so ``flush()`` waits for it."""
        self._writing = True
        try:
            await self._write(text)
        finally:
            self._writing = False
            self._flushed.set()

    async def flush(self, within: float) -> bool:
        """Wait (at most ``within`` seconds) until every queued frame is written; True if so."""
        try:
            async with asyncio.timeout(within):
                while self._queue or self._writing:
                    self._flushed.clear()
                    await self._flushed.wait()
        except TimeoutError:
            return False
        return True

    def put(self, text: str) -> bool:
        """Queue a frame; False if the queue is full (one frame always fits when empty)."""
        if self._queue and (
            (self.max_frames and len(self._queue) >= self.max_frames)
            or (self.max_bytes and self._bytes + len(text) > self.max_bytes)
        ):
            return False
        self._queue.append(text)
        self._bytes += len(text)
        self._wakeup.set()
        self._ensure_drain()
        return True

    async def stop(self) -> None:
        """Drop what is queued and end the drain task."""
        self._started = False
        self._queue.clear()
        self._bytes = 0
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _drain(self) -> None:
        pause = 0.005
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if self.probe is not None and self.probe() > self.high_water:
                # The server has not flushed what it has: the client is not reading. The
                # next frames wait here, where they are counted, instead of in its buffer.
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.1)
                continue
            pause = 0.005
            text = self._queue.popleft()
            self._bytes -= len(text)
            await self._write_one(text)
