"""
The terminal chat (``manage.py gateway_chat``): a line-oriented prompt_toolkit front end on the
client library. Replies stream as they arrive, ``/`` commands run in the session's slash worker
(Tab completes them), ``:`` commands manage sessions, Ctrl-C interrupts a turn, Ctrl-D quits.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TextIO

from .client import Gateway
from .errors import ClientConnectionError, GatewayError
from .events import (
    ApprovalRequest,
    ClarifyRequest,
    Disconnected,
    ErrorEvent,
    Event,
    MessageComplete,
    MessageDelta,
    Reconnected,
    ResumeGap,
    RetryScheduled,
    SessionClosed,
    ToolComplete,
    ToolStart,
)
from .results import SessionSummary

HELP = """\
Type a message and press Enter to send it to the agent.
  /command args   run a slash command in this session (Tab completes, /help lists them)
  :sessions       list your sessions, numbered
  :switch N       switch to session N of the list (or a session id prefix)
  :new [title]    start a new session and switch to it
  :close          close this session
  :help           this help
Ctrl-C interrupts a running reply, Ctrl-D (or :quit) quits."""

CHOICES = {"o": "once", "once": "once", "s": "session", "session": "session"}
CHOICES.update({"d": "deny", "deny": "deny", "n": "deny", "no": "deny"})


class Screen:
    """Writes to the terminal, remembering whether the cursor is mid-line (a reply streaming)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.mid_line = False

    def write(self, text: str) -> None:
        if text:
            self.out.write(text)
            self.out.flush()
            self.mid_line = not text.endswith("\n")

    def line(self, text: str) -> None:
        """A whole line, on a line of its own even while a reply is streaming."""
        self.write(("\n" if self.mid_line else "") + text + "\n")


def slash_completer(complete: Callable[[str], Awaitable[list[str]]]) -> Any:
    """A prompt_toolkit completer asking the gateway's ``complete.slash`` for ``/`` input."""
    from prompt_toolkit.completion import Completer, Completion

    class SlashCompleter(Completer):
        def get_completions(self, document, complete_event):  # noqa: ANN001
            return iter(())

        async def get_completions_async(  # noqa: ANN001
            self, document, complete_event
        ) -> AsyncIterator[Completion]:
            text = document.text_before_cursor
            if not text.startswith("/") or " " in text:
                return
            try:
                found = await complete(text)
            except (GatewayError, ClientConnectionError):
                return
            for completion in found:
                yield Completion(completion, start_position=-len(text))

    return SlashCompleter()


class Chat:
    """One terminal chat over a connected ``Gateway``: a current session and the prompt loop."""

    def __init__(self, gateway: Gateway, out: TextIO | None = None) -> None:
        from prompt_toolkit import PromptSession

        self.gw = gateway
        self.screen = Screen(out or sys.stdout)
        self.session_id: str | None = None
        self.title = ""
        self.listing: list[SessionSummary] = []
        self.input = PromptSession(
            completer=slash_completer(gateway.complete), complete_while_typing=False
        )
        self.answers = PromptSession()

    async def run(self, title: str = "terminal") -> None:
        """Start a session, then read lines until Ctrl-D or ``:quit``."""
        from prompt_toolkit.patch_stdout import patch_stdout

        watcher = asyncio.get_running_loop().create_task(self.watch_events())
        try:
            with patch_stdout():
                self.screen.line("hermes chat: :help for help, Ctrl-D quits")
                await self.new_session(title)
                while True:
                    try:
                        line = await self.input.prompt_async(f"[{self.title or 'chat'}] > ")
                    except KeyboardInterrupt:
                        continue
                    except EOFError:
                        break
                    if not await self.handle(line.strip()):
                        break
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def handle(self, line: str) -> bool:
        """Act on one input line; False to quit."""
        if not line:
            return True
        try:
            if line.startswith(":"):
                return await self.command(line[1:])
            if line.startswith("/"):
                self.screen.line((await self.gw.slash(self.require_session(), line)).rstrip())
            else:
                await self.turn(line)
        except GatewayError as exc:
            self.screen.line(f"error {exc.code}: {exc.message}")
        except ClientConnectionError as exc:
            self.screen.line(f"connection: {exc}")
        return True

    async def command(self, text: str) -> bool:
        name, _, arg = text.partition(" ")
        arg = arg.strip()
        if name in ("q", "quit", "exit"):
            return False
        if name in ("h", "help", "?"):
            self.screen.line(HELP)
        elif name in ("sessions", "ls"):
            await self.show_sessions()
        elif name in ("switch", "s"):
            await self.switch(arg)
        elif name == "new":
            await self.new_session(arg)
        elif name == "close":
            await self.gw.close_session(self.require_session())
            self.screen.line(f"closed {self.session_id}")
            self.session_id, self.title = None, ""
        else:
            self.screen.line(f"unknown command :{name} (:help lists them)")
        return True

    def require_session(self) -> str:
        if self.session_id is None:
            raise GatewayError("no session: :new or :switch N first", code=4001)
        return self.session_id

    async def new_session(self, title: str) -> None:
        info = await self.gw.create_session(title)
        self.session_id, self.title = info.session_id, info.title
        self.screen.line(f"session {info.session_id} ({info.title or 'untitled'})")

    async def show_sessions(self) -> None:
        self.listing = await self.gw.list_sessions()
        for number, row in enumerate(self.listing, 1):
            mark = "*" if row.session_id == self.session_id else " "
            self.screen.line(
                f"{mark}{number:>3}  {row.session_id[:8]}  {row.status:<8} "
                f"{row.messages:>4} msgs  {row.title}"
            )
        if not self.listing:
            self.screen.line("no sessions")

    async def switch(self, which: str) -> None:
        if which.isdigit() and 1 <= int(which) <= len(self.listing):
            session_id = self.listing[int(which) - 1].session_id
        else:
            ids = [row.session_id for row in self.listing]
            matches = [sid for sid in ids if which and sid.startswith(which)]
            if len(matches) != 1:
                self.screen.line("usage: :switch N (a number from :sessions, or an id prefix)")
                return
            session_id = matches[0]
        resumed = await self.gw.resume(session_id)
        self.session_id, self.title = session_id, resumed.title
        for message in resumed.messages[-6:]:
            self.screen.line(f"  {message.role}: {message.content}")
        self.screen.line(f"switched to {session_id} ({resumed.title or 'untitled'})")

    async def turn(self, text: str) -> None:
        """Send a prompt and stream its reply; Ctrl-C while it runs interrupts it."""
        turn = self.gw.prompt(self.require_session(), text)
        loop = asyncio.get_running_loop()

        def on_interrupt() -> None:
            self.screen.line("interrupting…")
            loop.create_task(self.gw.interrupt(turn.session_id))

        with sigint_calls(loop, on_interrupt):
            async for event in turn:
                await self.show(event)

    async def show(self, event: Event) -> None:
        if isinstance(event, MessageDelta):
            self.screen.write(event.text)
        elif isinstance(event, ToolStart):
            self.screen.line(f"[tool {event.name} {event.args}]")
        elif isinstance(event, ToolComplete):
            self.screen.line(f"[tool result: {event.result}]")
        elif isinstance(event, ApprovalRequest):
            choice = await self.ask_choice(event)
            await self.gw.respond_approval(event.session_id or "", event.request_id, choice)
        elif isinstance(event, ClarifyRequest):
            answer = await self.ask(f"? {event.question} > ")
            await self.gw.respond_clarify(event.session_id or "", event.request_id, answer)
        elif isinstance(event, ErrorEvent):
            self.screen.line(f"error: {event.message}")
        elif isinstance(event, ResumeGap):
            self.screen.line("(part of the reply was lost while disconnected)")
        elif isinstance(event, MessageComplete):
            if event.interrupted:
                self.screen.line("[interrupted]")
            elif self.screen.mid_line:
                self.screen.write("\n")

    async def ask(self, message: str) -> str:
        if self.screen.mid_line:
            self.screen.write("\n")
        return await self.answers.prompt_async(message)

    async def ask_choice(self, request: ApprovalRequest) -> str:
        question = f"approve {request.tool}: {request.description}? [o]nce [s]ession [d]eny > "
        while True:
            try:
                answer = (await self.ask(question)).strip().lower()
            except (KeyboardInterrupt, EOFError):
                return "deny"
            if answer in CHOICES:
                return CHOICES[answer]

    async def watch_events(self) -> None:
        """Show what happens outside the current turn: reconnects, closed sessions, failures."""
        try:
            async for event in self.gw.events():
                if isinstance(event, Disconnected):
                    self.screen.line(f"reconnecting… ({event.reason})")
                elif isinstance(event, RetryScheduled):
                    self.screen.line(f"retrying in {event.delay:.1f}s ({event.reason})")
                elif isinstance(event, Reconnected):
                    self.screen.line("reconnected")
                elif isinstance(event, SessionClosed):
                    self.screen.line(f"session {event.session_id} closed ({event.reason})")
                    if event.session_id == self.session_id:
                        self.session_id, self.title = None, ""
                elif isinstance(event, ResumeGap):
                    self.screen.line(f"(events of {event.session_id} were lost while away)")
        except ClientConnectionError as exc:
            self.screen.line(f"connection failed: {exc} (Ctrl-D quits)")


@contextlib.contextmanager
def sigint_calls(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]):
    """Within the block, Ctrl-C (SIGINT) calls ``callback`` instead of raising."""
    try:
        loop.add_signal_handler(signal.SIGINT, callback)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, Windows
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGINT)


async def run_chat(connector: Any, *, title: str = "terminal") -> int:
    """Connect (``connect(...)`` or ``connect_stdio(...)``) and run the chat; the exit status."""
    try:
        async with connector as gateway:
            await Chat(gateway).run(title)
    except ClientConnectionError as exc:
        print(f"gateway_chat: {exc}", file=sys.stderr)
        return 1
    return 0
