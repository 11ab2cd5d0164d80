"""
The stdio transport: newline-delimited JSON-RPC on stdin/stdout, through the same dispatch
as the WebSocket consumer. Session events reach it the same way too: this connection gets
its own channel-layer channel, which the host adds to session groups.

Limits: a line over ``MAX_MESSAGE_BYTES`` is answered 4013 (id null) without being buffered
whole. The rate limit throttles instead of refusing: a pipe has backpressure, so stdin is
simply read more slowly (scripts piped in keep working). The inbox is bounded, so a client
that stops reading stdout stalls the reads rather than growing memory.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from typing import Any

from channels.layers import get_channel_layer

from ..conf import setting
from ..rpc.context import CallContext, Caller, close_summary
from ..rpc.dispatch import dispatch_frame
from ..rpc.protocol import Frame, Rejected, encode, ready_message
from ..sessions.host import get_host
from ..sessions.state import EVENT_MESSAGE, delivers_to
from .limits import InputGuard, user_buckets

logger = logging.getLogger(__name__)

#: StreamReader buffer limit; longer lines are discarded in pieces of at most this size.
_STDIN_LIMIT = 1024 * 1024
_TOO_LARGE = object()


async def read_line(reader: asyncio.StreamReader) -> bytes | object | None:
    """
    The next line (``None`` at EOF). A line longer than the reader's limit is discarded
    chunk by chunk, up to and including its newline, and reported as ``_TOO_LARGE``.
    """
    try:
        return await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        return exc.partial or None
    except asyncio.LimitOverrunError as exc:
        consumed = exc.consumed
    while True:
        await reader.readexactly(consumed)
        try:
            await reader.readuntil(b"\n")
            return _TOO_LARGE
        except asyncio.IncompleteReadError:
            return _TOO_LARGE
        except asyncio.LimitOverrunError as exc:
            consumed = exc.consumed


async def serve(
    caller: Caller, reader: asyncio.StreamReader, write_line: Any, *, peer: str = "stdio"
) -> CallContext:
    """Serve one stdio client until EOF; ``write_line(text)`` is an async line writer."""
    layer = get_channel_layer()
    host = await get_host()
    ctx = CallContext(
        caller=caller,
        channel_name=await layer.new_channel("stdio"),
        transport="stdio",
        peer=peer,
    )
    host.connection_opened(ctx)
    guard = InputGuard(ctx)
    inbox: asyncio.Queue = asyncio.Queue(maxsize=max(setting("SEND_QUEUE_LIMIT"), 16))

    async def read_lines() -> None:
        while True:
            line = await read_line(reader)
            if line is None:
                await inbox.put(None)
                return
            if line is not _TOO_LARGE and not line.strip():
                continue
            await guard.wait()
            await inbox.put(("line", line))

    async def read_events() -> None:
        while True:
            message = await layer.receive(ctx.channel_name)
            if message.get("type") == EVENT_MESSAGE and delivers_to(message, ctx.user_id):
                await inbox.put(("event", message["frame"]))

    await write_line(encode(ready_message(setting("SKIN"))))
    tasks = [asyncio.create_task(read_lines()), asyncio.create_task(read_events())]
    guard.user_bucket = user_buckets.acquire(ctx.user_id, ctx.channel_name, guard.limits)
    try:
        # One consumer loop, like a consumer's dispatch: a response is always written
        # before any event its request caused.
        while (item := await inbox.get()) is not None:
            kind, data = item
            if kind == "event":
                await write_line(data)
                continue
            if data is _TOO_LARGE:
                guard.log.hit("message_bytes", "line longer than the stdin buffer")
                frame = Frame([Rejected(guard.too_large_message())])
            else:
                text = data.decode("utf-8", errors="replace").strip()
                frame = Frame([guard.line(text)] if text else [])
            for response in await dispatch_frame(ctx, frame):
                await write_line(encode(response))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        user_buckets.release(ctx.user_id, ctx.channel_name)
        await host.connection_closed(ctx)
        logger.info(close_summary(ctx))
    return ctx


async def serve_process_stdio(caller: Caller) -> None:
    """Serve this process's own stdin/stdout."""
    reader = await _stdin_reader()
    write_line = await _stdout_writer()
    try:
        await serve(caller, reader, write_line)
    finally:
        host = await get_host()
        await host.stop()


async def _stdin_reader() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    limit = max(_STDIN_LIMIT, setting("MAX_MESSAGE_BYTES") + 2)
    reader = asyncio.StreamReader(limit=limit)
    try:
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    except ValueError:
        # A regular file (``< script.jsonl``) cannot be polled: read it in a thread.
        def pump() -> None:
            for chunk in iter(lambda: sys.stdin.buffer.read1(65536), b""):
                loop.call_soon_threadsafe(reader.feed_data, chunk)
            loop.call_soon_threadsafe(reader.feed_eof)

        threading.Thread(target=pump, name="stdin-reader", daemon=True).start()
    return reader


async def _stdout_writer() -> Any:
    loop = asyncio.get_running_loop()
    try:
        transport, protocol = await loop.connect_write_pipe(
            asyncio.streams.FlowControlMixin, sys.stdout
        )
    except ValueError:
        # A regular file never blocks for long; write it directly.
        async def write_file(text: str) -> None:
            sys.stdout.buffer.write(text.encode("utf-8") + b"\n")
            sys.stdout.buffer.flush()

        return write_file
    writer = asyncio.StreamWriter(transport, protocol, None, loop)

    async def write_pipe(text: str) -> None:
        writer.write(text.encode("utf-8") + b"\n")
        await writer.drain()

    return write_pipe
