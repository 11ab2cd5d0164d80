"""The one way tests assert that processes (slash workers, servers, sandboxes) are gone."""

from __future__ import annotations

from collections.abc import Iterable

import psutil

from .poll import eventually, eventually_sync


def is_running(pid: int, *, reaped: bool = False) -> bool:
    """Whether ``pid`` still runs; a zombie counts as gone unless ``reaped`` asks for its reap."""
    try:
        status = psutil.Process(pid).status()
    except psutil.NoSuchProcess:
        return False
    return reaped or status != psutil.STATUS_ZOMBIE


def running(pids: Iterable[int | psutil.Process], *, reaped: bool = False) -> list[int]:
    """Those of ``pids`` still running (see ``is_running``)."""
    numbers = [p.pid if isinstance(p, psutil.Process) else p for p in pids]
    return [pid for pid in numbers if is_running(pid, reaped=reaped)]


async def assert_gone(
    pids: Iterable[int | psutil.Process], *, within: float = 10.0, reaped: bool = False
) -> None:
    """
    Fail unless every one of ``pids`` is gone within ``within`` seconds (0: already). With
    ``reaped``, a zombie is not gone yet: our own children must also have been waited for.
    """
    pids = list(pids)
    if within <= 0:
        left = running(pids, reaped=reaped)
        assert not left, f"processes still running: {left}"
        return
    await eventually(
        lambda: not running(pids, reaped=reaped),
        within=within,
        interval=0.02,
        message=lambda: f"processes still running after {within}s: {running(pids, reaped=reaped)}",
    )


def assert_gone_sync(
    pids: Iterable[int | psutil.Process], *, within: float = 10.0, reaped: bool = False
) -> None:
    """``assert_gone`` for sync tests and fixtures."""
    pids = list(pids)
    if within <= 0:
        left = running(pids, reaped=reaped)
        assert not left, f"processes still running: {left}"
        return
    eventually_sync(
        lambda: not running(pids, reaped=reaped),
        within=within,
        interval=0.05,
        message=lambda: f"processes still running after {within}s: {running(pids, reaped=reaped)}",
    )
