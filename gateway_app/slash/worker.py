"""
The slash worker: a per-session child process (``python -m gateway_app.slash.worker``) that
executes slash commands. It speaks JSON lines on stdin/stdout, one reply per request, and exits
by itself on stdin EOF or when its parent dies, so it can never outlive its host.

It imports only the standard library and the slash package (no Django) to keep startup fast
and the child's footprint small, plus the command modules of ``SLASH_COMMANDS``, whose names
the parent passes as arguments (``python -m gateway_app.slash.worker mod.a mod.b``).
"""

from __future__ import annotations

import difflib
import json
import os
import platform
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from gateway_app.slash.commands import SKINS, command_name
from gateway_app.slash.registry import BUILTIN_TABLE, Table, build_table

#: How often the parent-death watch polls ``os.getppid()``.
PARENT_POLL_S = 1.0
#: /history shows at most this many of the latest messages, each cut to this many characters.
HISTORY_MAX_MESSAGES = 50
HISTORY_MAX_CHARS = 500


class CommandError(Exception):
    """A request that cannot be executed; its message is sent back as the reply's ``error``."""


@dataclass(frozen=True)
class User:
    """The session's owner, as a command sees it."""

    id: int
    username: str


class Context:
    """The session snapshot the parent sends with each request, read leniently with defaults.
    A registered command gets it as ``ctx``: ``session_id``, ``user``, ``title``, ``status``,
    ``skin``, ``version``, and ``messages`` (empty unless the command reads the transcript)."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.session_id = str(raw.get("session_id") or "")
        user = raw.get("user") if isinstance(raw.get("user"), dict) else {}
        user_id = user.get("id")
        self.user = User(
            user_id if isinstance(user_id, int) and not isinstance(user_id, bool) else 0,
            str(user.get("username") or ""),
        )
        self.title = str(raw.get("title") or "")
        self.status = str(raw.get("status") or "")
        self.skin = str(raw.get("skin") or "default")
        self.version = str(raw.get("version") or "unknown")
        messages = raw.get("messages") or []
        if not isinstance(messages, list):
            raise CommandError("context.messages must be a list")
        self.messages: list[dict[str, Any]] = [m for m in messages if isinstance(m, dict)]


Result = tuple[str, dict[str, Any]]

#: The commands this worker runs: the built-ins until :func:`main` loads ``SLASH_COMMANDS``.
_table: Table = BUILTIN_TABLE


### Commands ###


def cmd_help(arg: str, ctx: Context) -> Result:
    width = max(len(spec.usage) for spec in _table.specs)
    lines = ["Commands:"]
    lines += [f"  {spec.usage.ljust(width)}  {spec.description}" for spec in _table.specs]
    return "\n".join(lines), {}


def cmd_title(arg: str, ctx: Context) -> Result:
    title = " ".join(arg.split())
    if not title:
        current = f"Current title: {ctx.title}\n" if ctx.title else ""
        return f"{current}Usage: /title <text>", {}
    return f"Title set to: {title}", {"title": title}


def cmd_status(arg: str, ctx: Context) -> Result:
    lines = [
        f"Session:  {ctx.session_id or '-'}",
        f"Title:    {ctx.title or '(untitled)'}",
        f"Status:   {ctx.status or '-'}",
        f"Messages: {len(ctx.messages)}",
        f"Skin:     {ctx.skin}",
        f"Worker:   pid {os.getpid()}",
    ]
    return "\n".join(lines), {}


def cmd_history(arg: str, ctx: Context) -> Result:
    if not ctx.messages:
        return "(no messages)", {}
    shown = ctx.messages[-HISTORY_MAX_MESSAGES:]
    lines = []
    if len(ctx.messages) > len(shown):
        lines.append(f"({len(ctx.messages) - len(shown)} earlier messages not shown)")
    for message in shown:
        role = str(message.get("role") or "?")
        content = " ".join(str(message.get("content") or "").split())
        if len(content) > HISTORY_MAX_CHARS:
            content = content[: HISTORY_MAX_CHARS - 1] + "…"
        lines.append(f"{role}: {content}")
    return "\n".join(lines), {}


def cmd_clear(arg: str, ctx: Context) -> Result:
    return "Transcript cleared.", {"clear": True}


def cmd_version(arg: str, ctx: Context) -> Result:
    return f"Hermes gateway {ctx.version}\nPython {platform.python_version()}", {}


def cmd_skin(arg: str, ctx: Context) -> Result:
    name = arg.strip().lower()
    if not name:
        lines = ["Skins:"]
        for skin in SKINS:
            lines.append(f"{'*' if skin == ctx.skin else ' '} {skin}")
        return "\n".join(lines), {}
    if name not in SKINS:
        return f"Unknown skin {name!r}. Valid skins: {', '.join(SKINS)}.", {}
    return f"Skin set to {name}.", {"skin": name}


HANDLERS: dict[str, Callable[[str, Context], Result]] = {
    "/help": cmd_help,
    "/title": cmd_title,
    "/status": cmd_status,
    "/history": cmd_history,
    "/clear": cmd_clear,
    "/version": cmd_version,
    "/skin": cmd_skin,
}


def run_command(command: str, ctx: Context) -> Result:
    """Execute one command line; unknown commands get a hint, never an exception."""
    text = command.strip()
    if not text.startswith("/"):
        raise CommandError("a slash command must start with '/'")
    _, _, arg = text.partition(" ")
    name = command_name(text)
    handler = HANDLERS.get(name)
    if handler is not None:
        return handler(arg, ctx)
    registered = _table.handlers.get(name)
    if registered is not None:
        return _checked_result(name, registered(ctx, arg))
    close = difflib.get_close_matches(name, sorted(spec.name for spec in _table.specs), n=1)
    hint = f" Did you mean {close[0]}?" if close else ""
    return f"Unknown command {name}.{hint} Try /help.", {}


def _checked_result(name: str, result: Any) -> Result:
    # A registered command's effects are limited to what the built-ins may do, each of the
    # type the host applies, so third-party code cannot set an unknown skin or a non-text title.
    if isinstance(result, str):
        return result, {}
    if not (
        isinstance(result, tuple)
        and len(result) == 2
        and isinstance(result[0], str)
        and isinstance(result[1], dict)
    ):
        raise CommandError(f"{name} returned {type(result).__name__}, not str or (str, dict)")
    output, effects = result
    checked: dict[str, Any] = {}
    for key, value in effects.items():
        if key == "title" and isinstance(value, str):
            checked["title"] = " ".join(value.split())
        elif key == "clear" and isinstance(value, bool):
            checked["clear"] = value
        elif key == "skin" and value in SKINS:
            checked["skin"] = value
        else:
            raise CommandError(f"{name} returned an invalid effect {key!r}: {value!r}")
    return output, checked


def install(modules: list[str]) -> Table:
    """Load the command modules (one that fails to import is skipped, as the gateway's
    system check reports it) and make their commands this worker's."""
    global _table
    _table = build_table(modules)
    for problem in _table.problems:
        print(f"slash worker: {problem.module}: {problem.detail}", file=sys.stderr)
    return _table


### Protocol ###


def handle_line(line: bytes) -> dict[str, Any]:
    """Turn one request line into its reply; every failure becomes an ``error`` reply."""
    request_id: int | None = None
    try:
        try:
            request = json.loads(line.decode("utf-8", errors="replace"))
        except ValueError as exc:
            raise CommandError(f"invalid JSON: {exc}") from None
        if not isinstance(request, dict):
            raise CommandError("request must be a JSON object")
        raw_id = request.get("id")
        if isinstance(raw_id, int) and not isinstance(raw_id, bool):
            request_id = raw_id
        else:
            raise CommandError("request.id must be an integer")
        command = request.get("command")
        if not isinstance(command, str):
            raise CommandError("request.command must be a string")
        raw_context = request.get("context", {})
        if not isinstance(raw_context, dict):
            raise CommandError("request.context must be an object")
        output, effects = run_command(command, Context(raw_context))
        return {"id": request_id, "output": output, "effects": effects}
    except CommandError as exc:
        return {"id": request_id, "error": str(exc)}
    except Exception as exc:  # a bug in one command must not take the worker down
        return {"id": request_id, "error": f"internal error: {type(exc).__name__}: {exc}"}


def watch_parent(original_ppid: int, interval: float = PARENT_POLL_S) -> None:
    """Exit the process once the parent changes (it died and we were re-parented)."""
    while True:
        time.sleep(interval)
        if os.getppid() != original_ppid:
            os._exit(0)


def serve(stdin: BinaryIO, stdout: BinaryIO) -> None:
    """Answer request lines until stdin reaches EOF."""
    for line in iter(stdin.readline, b""):
        if not line.strip():
            continue
        reply = json.dumps(handle_line(line), ensure_ascii=True).encode("ascii")
        stdout.write(reply + b"\n")
        stdout.flush()


def main(argv: list[str] | None = None) -> int:
    # Ctrl-C in a terminal reaches the whole process group; the host closes us via EOF instead.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(
        target=watch_parent, args=(os.getppid(),), name="parent-watch", daemon=True
    ).start()
    replies = sys.stdout.buffer
    # Anything a command module prints goes to stderr: stdout carries only replies.
    sys.stdout = sys.stderr
    install(sys.argv[1:] if argv is None else argv)
    try:
        serve(sys.stdin.buffer, replies)
    except BrokenPipeError:
        pass  # the parent stopped reading; nobody is left to answer
    return 0


if __name__ == "__main__":
    sys.exit(main())
