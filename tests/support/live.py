"""Clients for live tests: the ``websockets`` library and the stdio command, as RpcClients."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from collections.abc import AsyncIterator
from typing import Any

from websockets.asyncio.client import connect as ws_connect

from .rpc import RpcClient
from .servers import PYTHON, REPO


@contextlib.asynccontextmanager
async def ws_rpc(url: str, token: str, **kwargs) -> AsyncIterator[RpcClient]:
    """A websockets connection authenticated by bearer token, ready frame consumed."""
    headers = {"Authorization": f"Bearer {token}"}
    async with ws_connect(url, additional_headers=headers, max_size=None, **kwargs) as ws:
        rpc = RpcClient(ws.send, ws.recv)
        rpc.websocket = ws
        await rpc.wait_ready()
        yield rpc


@contextlib.asynccontextmanager
async def stdio_rpc(env: dict[str, str], user: str) -> AsyncIterator[RpcClient]:
    """``manage.py gateway_stdio --user`` as a subprocess; stopped (EOF, then kill) on exit."""
    process = await asyncio.create_subprocess_exec(
        PYTHON,
        "manage.py",
        "gateway_stdio",
        "--user",
        user,
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        limit=16 * 1024 * 1024,
    )

    async def send(text: str) -> None:
        process.stdin.write(text.encode() + b"\n")
        await process.stdin.drain()

    async def recv() -> str:
        line = await process.stdout.readline()
        if not line:
            raise EOFError("gateway_stdio closed stdout")
        return line.decode()

    rpc = RpcClient(send, recv, timeout=30)
    rpc.process = process
    try:
        await rpc.wait_ready()
        yield rpc
    finally:
        if process.stdin and not process.stdin.is_closing():
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            process.kill()
            await process.wait()


def sync_call(ws: Any, request_id: int, method: str, params: dict | None = None) -> dict:
    """One JSON-RPC call over a sync ``websockets`` socket (tests driving a browser or a
    proxy in the same thread); events before its answer are skipped."""
    request = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {}}
    ws.send(json.dumps(request))
    while True:
        message = json.loads(ws.recv(timeout=10))
        if message.get("id") == request_id:
            assert "result" in message, message
            return message["result"]
