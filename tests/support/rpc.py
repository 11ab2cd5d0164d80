"""A transport-agnostic JSON-RPC test client: give it ``send(text)`` and ``recv() -> text``."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Awaitable, Callable
from typing import Any

DEFAULT_TIMEOUT = 10.0


class RpcClient:
    """Sends requests, matches responses by id and keeps events in arrival order."""

    def __init__(
        self,
        send: Callable[[str], Awaitable[None]],
        recv: Callable[[], Awaitable[str]],
        timeout: float = DEFAULT_TIMEOUT,
    ):
        self._send = send
        self._recv = recv
        self.timeout = timeout
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []
        self.responses: dict[Any, dict[str, Any]] = {}
        self.ready: dict[str, Any] | None = None

    async def send_text(self, text: str) -> None:
        await self._send(text)

    async def read_one(self) -> dict[str, Any]:
        """Receive one frame and file it as response or event."""
        message = json.loads(await asyncio.wait_for(self._recv(), self.timeout))
        if message.get("method") == "event":
            if message["params"]["type"] == "gateway.ready" and self.ready is None:
                self.ready = message
            else:
                self.events.append(message["params"])
        elif "id" in message:
            self.responses[message["id"]] = message
        return message

    async def wait_ready(self) -> dict[str, Any]:
        while self.ready is None:
            await self.read_one()
        return self.ready

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send one request and return the full response message."""
        request_id = next(self._ids)
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        await self._send(json.dumps(message))
        return await self.response(request_id)

    async def response(self, request_id: Any) -> dict[str, Any]:
        while request_id not in self.responses:
            await self.read_one()
        return self.responses.pop(request_id)

    async def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a request and return its result; fails the test on an error response."""
        response = await self.request(method, params)
        assert "result" in response, f"{method} failed: {response}"
        return response["result"]

    async def error(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a request that must fail; returns its error object."""
        response = await self.request(method, params)
        assert "error" in response, f"{method} unexpectedly succeeded: {response}"
        return response["error"]

    async def event(self, event_type: str, **match: Any) -> dict[str, Any]:
        """Wait for (and consume) the first event of a type whose payload matches."""
        while True:
            for index, event in enumerate(self.events):
                payload = event.get("payload", {})
                if event["type"] == event_type and all(
                    payload.get(k) == v for k, v in match.items()
                ):
                    return self.events.pop(index)
            await self.read_one()

    async def turn(self, session_id: str, text: str) -> dict[str, Any]:
        """Submit a prompt and wait for its ``message.complete`` payload."""
        result = await self.call("prompt.submit", {"session_id": session_id, "text": text})
        complete = await self.event("message.complete", turn_id=result["turn_id"])
        return complete["payload"]

    async def closed_sessions(self, count: int) -> list[str]:
        """Create and close ``count`` sessions: stored only, each one a cold start to revive."""
        stored = []
        for _ in range(count):
            session_id = (await self.call("session.create"))["session_id"]
            await self.call("session.close", {"session_id": session_id})
            stored.append(session_id)
        return stored

    async def all_sessions(self) -> list[dict[str, Any]]:
        """Every page of ``session.list``, following ``next_cursor``."""
        sessions: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 200}
        while True:
            page = await self.call("session.list", params)
            sessions += page["sessions"]
            if not page.get("next_cursor"):
                return sessions
            params = {"limit": 200, "cursor": page["next_cursor"]}

    def deltas(self, turn_id: str) -> list[str]:
        return [
            e["payload"]["text"]
            for e in self.events
            if e["type"] == "message.delta" and e["payload"]["turn_id"] == turn_id
        ]
