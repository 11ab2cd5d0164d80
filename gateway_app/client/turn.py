"""
``Turn``: what ``Gateway.prompt`` returns. It is an async iterator of the turn's events (up to
and including ``message.complete``) and an awaitable of the reply's final text.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator
from typing import Any

from .events import Event, MessageComplete, MessageDelta

_END = object()


class Turn:
    """One prompt's turn in a session; events arrive exactly once, in ``seq`` order."""

    def __init__(
        self, session_id: str, text: str, interrupt: Callable[[str], Awaitable[bool]]
    ) -> None:
        self.session_id = session_id
        self.text = text
        self.turn_id: str | None = None
        self._interrupt = interrupt
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        self._accepted: asyncio.Future[str] = loop.create_future()
        self._complete: asyncio.Future[MessageComplete] = loop.create_future()
        # Callers may only iterate, or only await: an outcome nobody asks for is not an error.
        self._accepted.add_done_callback(_observe)
        self._complete.add_done_callback(_observe)
        self._iteration_over = False
        #: Events that came while ``prompt.submit`` was unanswered (their turn is not known yet).
        self.early: list[Event] = []
        #: The reply's text delivered so far (its deltas).
        self.streamed = ""

    @property
    def done(self) -> bool:
        return self._complete.done()

    async def accepted(self) -> str:
        """The ``turn_id`` once the gateway accepted the prompt (raises what it answered)."""
        return await asyncio.shield(self._accepted)

    async def result(self) -> MessageComplete:
        """The turn's ``message.complete`` (text, interrupted)."""
        return await asyncio.shield(self._complete)

    async def interrupt(self) -> bool:
        """Ask the gateway to stop this turn; its ``message.complete`` still follows."""
        await self.accepted()
        return await self._interrupt(self.session_id)

    def __await__(self) -> Generator[Any, None, str]:
        return self._text().__await__()

    async def _text(self) -> str:
        return (await self.result()).text

    def __aiter__(self) -> Turn:
        return self

    async def __anext__(self) -> Event:
        if self._iteration_over:
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is _END:
            self._iteration_over = True
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            self._iteration_over = True
            raise item
        return item

    # The gateway client's side.

    def owns(self, event: Event) -> bool:
        """Whether an event of this session belongs here (by ``turn_id`` when it carries one)."""
        turn_id = event.payload.get("turn_id")
        return turn_id is None or turn_id == self.turn_id

    def accept(self, turn_id: str) -> None:
        self.turn_id = turn_id
        if not self._accepted.done():
            self._accepted.set_result(turn_id)

    def feed(self, event: Event) -> None:
        if self.done:
            return
        self._queue.put_nowait(event)
        if isinstance(event, MessageDelta):
            self.streamed += event.text
        if isinstance(event, MessageComplete):
            self._complete.set_result(event)
            self._queue.put_nowait(_END)

    def fail(self, error: BaseException) -> None:
        if self.done:
            return
        for future in (self._accepted, self._complete):
            if not future.done():
                future.set_exception(error)
        self._queue.put_nowait(error)


def _observe(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()
