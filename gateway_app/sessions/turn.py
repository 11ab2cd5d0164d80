"""
One agent turn of a live session: runs the backend in its own task, streams its output as
session events (coalescing deltas), asks approval/clarify questions that survive reconnects,
and always ends with ``message.complete``.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

from ..agents import Agent, AgentError, Turn, TurnUser
from ..agents.base import ApprovalChoice
from ..agents.tools import Tool, ToolContext
from ..conf import setting
from ..metrics import families
from .state import LiveSession, PendingQuestion

if TYPE_CHECKING:
    from .host import SessionHost

logger = logging.getLogger(__name__)

#: Appended to a message cut at ``MAX_MESSAGE_CHARS``, so every reader sees it was cut.
TRUNCATED_MARK = "\n\n[truncated: longer than the gateway keeps]"


def cap_text(text: str, limit: int) -> tuple[str, bool]:
    """``text`` cut to ``limit`` characters and marked, and whether it was."""
    if len(text) <= limit:
        return text, False
    return text[:limit] + TRUNCATED_MARK, True


class TurnRunner(Turn):
    """Drives ``agent.run`` for one prompt; the host owns its lifecycle."""

    def __init__(
        self,
        host: SessionHost,
        session: LiveSession,
        agent: Agent,
        text: str,
        coalesce_s: float,
        user: TurnUser,
    ):
        self.host = host
        self.session = session
        self.session_id = session.id
        self.user = user
        self.agent = agent
        self.text = text
        # A copy: the session's transcript grows during the turn. At most HISTORY_LIMIT.
        self.history = list(session.history)
        self.turn_id = uuid.uuid4().hex
        self.coalesce_s = coalesce_s
        self.interrupted = False
        #: The reply reached MAX_MESSAGE_CHARS: cut there, marked, its backend stopped.
        self.truncated = False
        self.max_chars = setting("MAX_MESSAGE_CHARS")
        self._length = 0
        self.start_seq = 0
        self._completed = False
        self._parts: list[str] = []
        self._unsent: list[str] = []
        # The published deltas and their seqs, so a resume can give the text up to any seq.
        self._sent: list[str] = []
        self._sent_seqs: list[int] = []
        self._next_flush = 0.0
        self._flush_timer: asyncio.Task | None = None
        self._agent_task: asyncio.Task | None = None
        self._tools: dict[str, tuple[str, dict[str, Any]]] = {}
        self.tool_calls: list[dict[str, Any]] = []  # completed ones, for turn_finished
        self.task: asyncio.Task | None = None
        #: When prompt.submit made the turn: its latency (the live page, the histograms)
        #: runs from here.
        self.submitted_at = time.monotonic()
        self._first_delta = True

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(
            self._run_to_end(), name=f"turn-{self.session.id}"
        )

    def interrupt(self) -> bool:
        """Stop the backend at its next await; ``message.complete`` still follows."""
        if self._agent_task is None:
            if self.task is not None and self.task.done():
                return False
            # The backend has not started yet (message.start is on its way): it never will.
            self.interrupted = True
            return True
        if self._agent_task.done():
            return False
        self.interrupted = True
        self._agent_task.cancel()
        return True

    @property
    def text_so_far(self) -> str:
        return "".join(self._parts)

    def text_through(self, seq: int) -> str:
        """The text of the deltas published with ``seq`` at most this one."""
        return "".join(self._sent[: bisect.bisect_right(self._sent_seqs, seq)])

    async def _run_to_end(self) -> None:
        """Run the turn; however it ends, the session is free for the next one afterwards."""
        outcome = "completed"
        try:
            await self._run()
        except asyncio.CancelledError:
            outcome = "interrupted"  # torn down (session closed, reaped, host stopping)
            raise
        except Exception as exc:
            outcome = "crashed"
            logger.exception("turn %s of session %s crashed", self.turn_id, self.session.id)
            await self._crashed(exc)
        finally:
            if outcome == "completed" and self.interrupted:
                outcome = "interrupted"
            elapsed = time.monotonic() - self.submitted_at
            families.TURN_SECONDS.labels(outcome).observe(elapsed)
            self.host.turn_finished(self.session, self)

    async def _crashed(self, exc: Exception) -> None:
        """Tell the clients: an ``error`` event, then ``message.complete`` if it is still due."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        if self._agent_task is not None and not self._agent_task.done():
            self._agent_task.cancel()
        try:
            await self.host.publish(
                self.session, "error", {"message": f"internal error: {type(exc).__name__}"}
            )
            if not self._completed:
                await self._publish_complete()
        except Exception:
            logger.exception("could not report the crash of turn %s", self.turn_id)

    async def _run(self) -> None:
        session = self.session
        # Every attached connection sees the prompt, not only the one that sent it (an
        # addition to PROTOCOL.md v1). It is remembered before message.start, with no await
        # between, so a fresh resume finds it either in the transcript or as this event.
        await self.host.publish(
            session, "message.user", {"turn_id": self.turn_id, "text": self.text}
        )
        text, truncated = cap_text(self.text, self.max_chars)  # E081: never, by default
        entry = session.remember("user", text, truncated=truncated)
        self.host.store.add_message(
            session.id, "user", text, turn_id=self.turn_id, data=_marked(truncated), entry=entry
        )
        started = await self.host.publish(session, "message.start", {"turn_id": self.turn_id})
        self.start_seq = started.seq
        if self.interrupted:
            # session.interrupt came before the backend started: it never runs.
            await self._finish()
            return
        self._agent_task = asyncio.get_running_loop().create_task(self.agent.run(self))
        try:
            await asyncio.wait({self._agent_task})
            error = self._agent_task.exception() if not self._agent_task.cancelled() else None
            if isinstance(error, AgentError):
                await self.host.publish(session, "error", {"message": str(error)})
            elif error is not None:
                logger.error(
                    "agent %s crashed in session %s",
                    self.agent.name,
                    session.id,
                    exc_info=error,
                )
                await self.host.publish(
                    session, "error", {"message": f"agent error: {type(error).__name__}"}
                )
        finally:
            if not self._agent_task.done():
                # The turn itself was cancelled (teardown): stop the backend too.
                self._agent_task.cancel()
                await asyncio.gather(self._agent_task, return_exceptions=True)
                self.interrupted = True
            await self._finish()

    async def _finish(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        await self._flush()
        await self._publish_complete(store=True)

    async def _publish_complete(self, *, store: bool = False) -> None:
        """Publish ``message.complete``; with ``store``, the reply is remembered and its
        transcript row queued before the event goes out: a teardown cancelling the turn
        mid-send cannot leave a reply a client received missing from the database."""
        session = self.session
        text = self.text_so_far
        payload = {"turn_id": self.turn_id, "text": text, "interrupted": self.interrupted}
        if self.truncated:
            payload["truncated"] = True

        failed: list[Exception] = []

        def remember(seq: int) -> None:
            self._completed = True
            if not store:
                return
            entry = session.remember("assistant", text, truncated=self.truncated)
            if session.given_up:
                return  # the transcript is the new host's
            try:
                self.host.store.add_message(
                    session.id,
                    "assistant",
                    text,
                    turn_id=self.turn_id,
                    interrupted=self.interrupted,
                    data=_marked(self.truncated),
                    entry=entry,
                )
            except Exception as exc:
                failed.append(exc)  # the event is buffered: it goes out, then the turn fails

        # Counted before it is published: whoever sees the message.complete finds it counted.
        self.host.samples.turn_completed(time.monotonic() - self.submitted_at)
        await self.host.publish(session, "message.complete", payload, numbered=remember)
        if failed:
            raise failed[0]

    ### Turn interface for agent backends ###

    async def delta(self, text: str) -> None:
        if not text or self.truncated:
            return
        room = self.max_chars - self._length
        if len(text) > room:
            # The rest would be neither stored nor shown: stop the backend (it is this
            # task, or its caller), and let _finish send the cut text with its marker.
            text = text[:room] + TRUNCATED_MARK
            self.truncated = True
        self._length += len(text)
        self._parts.append(text)
        self._unsent.append(text)
        if self.truncated:
            if self._agent_task is not None:
                self._agent_task.cancel()
            return
        if self.coalesce_s <= 0:
            await self._flush()
            return
        now = time.monotonic()
        if now >= self._next_flush:
            await self._flush()
        elif self._flush_timer is None:
            self._flush_timer = asyncio.get_running_loop().create_task(
                self._flush_later(self._next_flush - now)
            )

    async def _flush_later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        self._flush_timer = None
        await self._flush()

    async def _flush(self) -> None:
        if not self._unsent:
            return
        text = "".join(self._unsent)
        self._unsent.clear()
        self._next_flush = time.monotonic() + self.coalesce_s

        def sent(seq: int) -> None:
            self._sent.append(text)
            self._sent_seqs.append(seq)

        await self.host.publish(
            self.session, "message.delta", {"turn_id": self.turn_id, "text": text}, numbered=sent
        )
        if self._first_delta:
            self._first_delta = False
            families.TURN_FIRST_DELTA_SECONDS.observe(time.monotonic() - self.submitted_at)

    async def tool_start(self, name: str, args: dict[str, Any]) -> str:
        await self._flush()
        tool_id = uuid.uuid4().hex[:12]
        await self.host.publish(
            self.session,
            "tool.start",
            {"turn_id": self.turn_id, "tool_id": tool_id, "name": name, "args": args},
        )
        self._tools[tool_id] = (name, args)
        return tool_id

    async def tool_complete(self, tool_id: str, result: Any) -> None:
        await self.host.publish(
            self.session,
            "tool.complete",
            {"turn_id": self.turn_id, "tool_id": tool_id, "result": result},
        )
        name, args = self._tools.pop(tool_id, ("", {}))
        self.tool_calls.append({"name": name, "args": args, "result": result})
        content = result if isinstance(result, str) else repr(result)
        content, truncated = cap_text(content, self.max_chars)
        entry = self.session.remember("tool", content, truncated=truncated)
        self.host.store.add_message(
            self.session.id,
            "tool",
            content,
            turn_id=self.turn_id,
            data={"tool_id": tool_id, "name": name, "args": args, **_marked(truncated)},
            entry=entry,
        )

    async def ask_approval(self, tool: str, description: str) -> ApprovalChoice:
        # "session" covers this exact call (tool and description, the command), not the tool.
        if (tool, description) in self.session.approved_tools:
            return "session"
        choice = await self._ask(
            "approval", "approval.request", {"tool": tool, "description": description}
        )
        if choice == "session":
            self.session.approved_tools.add((tool, description))
        return choice

    async def ask_clarify(self, question: str) -> str:
        return await self._ask("clarify", "clarify.request", {"question": question})

    async def tool_refusal(self, tool: Tool) -> str | None:
        return await self.host.terminal.refusal(self.session, tool)

    def tool_context(self, tool_id: str) -> ToolContext:
        async def scratch():
            return await self.host.terminal.scratch_dir(self.session)

        async def progress(text: str) -> None:
            await self._flush()
            payload = {"turn_id": self.turn_id, "tool_id": tool_id, "text": text}
            await self.host.publish(self.session, "tool.progress", payload)

        return ToolContext(self.session.id, self.user, tool_id, scratch, progress)

    async def _ask(self, kind: str, event_type: str, payload: dict[str, Any]) -> Any:
        await self._flush()
        request_id = uuid.uuid4().hex[:16]
        future = asyncio.get_running_loop().create_future()
        question = PendingQuestion(kind, request_id, future)
        # Registered before it is published, so an instant answer finds it.
        self.session.pending[request_id] = question
        try:
            question.seq, question.frame = await self.host.publish(
                self.session, event_type, {"request_id": request_id, **payload}
            )
            return await future
        finally:
            self.session.pending.pop(request_id, None)
            self.host.question_settled(self.session)


def _marked(truncated: bool) -> dict[str, Any]:
    """The ``data`` of a stored message: ``truncated`` when it was cut."""
    return {"truncated": True} if truncated else {}
