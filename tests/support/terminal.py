"""A program in a real terminal for live tests: a tmux session on a private tmux server."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import psutil

from .poll import eventually

TMUX = shutil.which("tmux") or "/usr/bin/tmux"


class Terminal:
    """``command`` in a ``width`` x ``height`` tmux pane; typed into and read back as text."""

    def __init__(
        self, command: str, *, cwd: str, env: dict[str, str], width: int = 120, height: int = 40
    ):
        self.socket = f"hermes-test-{uuid.uuid4().hex[:12]}"
        self.command = command
        self.cwd = cwd
        self.env = {key: value for key, value in env.items() if not key.startswith("TMUX")}
        self.size = (width, height)
        self.pids: list[int] = []
        self.socket_path = ""

    def tmux(self, *args: str) -> str:
        result = subprocess.run(
            [TMUX, "-L", self.socket, *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
            env=self.env,
        )
        return result.stdout

    def start(self) -> Terminal:
        width, height = self.size
        self.tmux(
            "new-session", "-d", "-x", str(width), "-y", str(height), "-c", self.cwd, self.command
        )
        # The tmux server and the pane's process: what must be gone after stop().
        self.pids = [int(self.tmux("display-message", "-p", "#{pid}").strip())]
        self.pids.append(int(self.tmux("display-message", "-p", "#{pane_pid}").strip()))
        self.socket_path = self.tmux("display-message", "-p", "#{socket_path}").strip()
        return self

    def send(self, *keys: str) -> None:
        """Keys as tmux names them (``Enter``, ``Tab``, ``C-c``, ``C-d``); text as literal."""
        self.tmux("send-keys", *keys)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-l", text)

    def screen(self) -> str:
        """The pane's text, trailing blanks stripped from every line and at the end."""
        lines = self.tmux("capture-pane", "-p", "-J").splitlines()
        return "\n".join(line.rstrip() for line in lines).rstrip("\n")

    async def wait_for(self, pattern: str, within: float = 20.0) -> re.Match:
        """Poll the pane until ``pattern`` (a regex) shows, for ``within`` seconds; the match."""

        async def shown() -> re.Match | None:
            return re.search(pattern, await asyncio.to_thread(self.screen), re.MULTILINE)

        return await eventually(
            shown,
            within=within,
            interval=0.05,
            message=lambda: f"{pattern!r} never showed; the screen:\n{self.screen()}",
        )

    def stop(self) -> list[int]:
        """Kill the tmux server; the pids (server, pane and its children) still alive after."""
        procs = []
        for pid in self.pids:
            try:
                proc = psutil.Process(pid)
                procs.append(proc)
                procs.extend(proc.children(recursive=True))
            except psutil.NoSuchProcess:
                continue
        subprocess.run([TMUX, "-L", self.socket, "kill-server"], capture_output=True, timeout=10)
        _, alive = psutil.wait_procs(procs, timeout=10)
        if self.socket_path:  # a killed server leaves its socket file behind
            Path(self.socket_path).unlink(missing_ok=True)
        return [proc.pid for proc in alive if proc.is_running()]


class DroppingProxy:
    """A loopback TCP proxy to ``port`` whose open connections ``drop()`` aborts at once."""

    def __init__(self, port: int):
        self.target = port
        self.port = 0
        self._transports: list[asyncio.WriteTransport] = []
        self._server: asyncio.Server | None = None
        self.accepted = 0

    async def start(self) -> DroppingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        self._transports += [writer.transport, up_writer.transport]

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def drop(self) -> None:
        """Abort every connection through the proxy, as a network failure would."""
        for transport in self._transports:
            transport.abort()
        self._transports.clear()

    async def stop(self) -> None:
        self.drop()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
