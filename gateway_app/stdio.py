"""
The stdio transport: newline-delimited JSON-RPC on stdin/stdout, through the same dispatch
as the WebSocket consumer. Session events reach it the same way too: this connection gets
its own channel-layer channel, which the host adds to session groups.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from typing import Any

from channels.layers import get_channel_layer

from .conf import setting
from .context import CallContext, Caller, close_summary
from .dispatch import dispatch_frame
from .exceptions import TooLarge
from .protocol import encode, error_message, parse_frame, ready_message
from .sessions import get_host
from .sessions.host import EVENT_MESSAGE

logger = logging.getLogger(__name__)

_STDIN_LIMIT = 16 * 1024 * 1024


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
    inbox: asyncio.Queue = asyncio.Queue()

    async def read_lines() -> None:
        while True:
            try:
                line = await reader.readline()
            except ValueError:
                # Over the stream limit; asyncio has already discarded the line.
                await inbox.put(("too_large", b""))
                continue
            if not line:
                await inbox.put(None)
                return
            await inbox.put(("line", line))

    async def read_events() -> None:
        while True:
            message = await layer.receive(ctx.channel_name)
            if message.get("type") == EVENT_MESSAGE:
                await inbox.put(("event", message["frame"]))

    await write_line(encode(ready_message(setting("SKIN"))))
    tasks = [asyncio.create_task(read_lines()), asyncio.create_task(read_events())]
    try:
        # One consumer loop, like a consumer's dispatch: a response is always written
        # before any event its request caused.
        while (item := await inbox.get()) is not None:
            kind, data = item
            if kind == "event":
                await write_line(data)
                continue
            if kind == "too_large":
                await write_line(encode(error_message(None, TooLarge("Line too large"))))
                continue
            text = data.decode("utf-8", errors="replace")
            for response in await dispatch_frame(ctx, parse_frame(text)):
                await write_line(encode(response))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
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
    reader = asyncio.StreamReader(limit=_STDIN_LIMIT)
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
