"""
A loopback fake of an OpenAI-compatible ``/chat/completions`` server, on plain asyncio streams.

Each test scripts the replies (status, SSE events, malformed lines, a stall) and inspects the
recorded requests. HTTP/1.1 keep-alive, chunked responses; just enough for ``httpx``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Reply:
    """One scripted response. ``events``: dicts are sent as ``data: <json>``, strings raw."""

    status: int = 200
    events: list[dict[str, Any] | str] = field(default_factory=list)
    done: bool = True  # end with ``data: [DONE]``
    stall: bool = False  # after the events, send nothing until the client disconnects
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""  # for error statuses


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    json: Any


def chunk(
    content: str | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    finish_reason: str | None = None,
) -> dict[str, Any]:
    """A ``chat.completion.chunk`` with one choice."""
    delta: dict[str, Any] = {}
    if content is not None:
        delta["content"] = content
    if tool_calls is not None:
        delta["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def text_reply(*pieces: str) -> Reply:
    """A reply streaming ``pieces`` as content deltas."""
    events: list[dict[str, Any] | str] = [chunk(content=p) for p in pieces]
    events.append(chunk(finish_reason="stop"))
    return Reply(events=events)


def tool_reply(name: str, arguments: str, call_id: str = "call_1") -> Reply:
    """A reply making one tool call, its arguments split over two fragments."""
    half = len(arguments) // 2
    first = {
        "index": 0,
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": arguments[:half]},
    }
    second = {"index": 0, "function": {"arguments": arguments[half:]}}
    return Reply(
        events=[
            chunk(tool_calls=[first]),
            chunk(tool_calls=[second]),
            chunk(finish_reason="tool_calls"),
        ]
    )


class FakeOpenAI:
    """The server: ``script()`` replies, ``await start()``, point a client at ``base_url``."""

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[Request] = []
        self.disconnected = asyncio.Event()  # set whenever a client connection ends
        self.base_url = ""
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()

    def script(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}/v1"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for writer in list(self._writers):
            writer.close()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        try:
            while (request := await _read_request(reader)) is not None:
                self.requests.append(request)
                reply = self.replies.popleft() if self.replies else Reply(500, body="unscripted")
                if not await _respond(reader, writer, reply):
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            self.disconnected.set()


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None  # the client closed a kept-alive connection
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Request(method, path, headers, json.loads(body) if body else None)


async def _respond(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, reply: Reply
) -> bool:
    """Send ``reply``; returns whether the connection stays usable."""
    if reply.status != 200:
        body = reply.body.encode()
        head = [f"HTTP/1.1 {reply.status} Fake", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in reply.headers.items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await writer.drain()
        return True
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    for event in reply.events:
        line = f"data: {json.dumps(event)}" if isinstance(event, dict) else event
        _write_chunk(writer, f"{line}\n\n".encode())
        await writer.drain()
    if reply.stall:
        await reader.read()  # returns at EOF: the client gave up or was cancelled
        return False
    if reply.done:
        _write_chunk(writer, b"data: [DONE]\n\n")
    writer.write(b"0\r\n\r\n")
    await writer.drain()
    return True


def _write_chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(b"%x\r\n%s\r\n" % (len(data), data))
