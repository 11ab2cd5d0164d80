"""Polling for state that has no event to await: one async helper and its sync twin."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

Check = Callable[[], "T | Awaitable[T]"]


async def eventually(
    check: Check,
    *,
    within: float = 5.0,
    interval: float = 0.01,
    retry_on: tuple[type[BaseException], ...] = (),
    message: str | Callable[[], str] = "",
) -> T:
    """
    Call ``check`` (sync or async) until it returns something truthy, and return that.
    Exceptions in ``retry_on`` count as "not yet"; past ``within`` the last one is raised,
    else an AssertionError carrying ``message`` (a callable is asked for it then).
    """
    deadline = time.monotonic() + within
    while True:
        try:
            result = check()
            if inspect.isawaitable(result):
                result = await result
        except retry_on:
            if time.monotonic() >= deadline:
                raise
        else:
            if result:
                return result
        if time.monotonic() >= deadline:
            raise AssertionError(_describe(message, within))
        await asyncio.sleep(interval)


def eventually_sync(
    check: Callable[[], T],
    *,
    within: float = 5.0,
    interval: float = 0.05,
    retry_on: tuple[type[BaseException], ...] = (),
    message: str | Callable[[], str] = "",
) -> T:
    """``eventually`` for sync tests and fixtures (live tests driving servers and browsers)."""
    deadline = time.monotonic() + within
    while True:
        try:
            result = check()
        except retry_on:
            if time.monotonic() >= deadline:
                raise
        else:
            if result:
                return result
        if time.monotonic() >= deadline:
            raise AssertionError(_describe(message, within))
        time.sleep(interval)


def _describe(message: str | Callable[[], str], within: float) -> str:
    text = message() if callable(message) else message
    return text or f"condition not met within {within}s"
