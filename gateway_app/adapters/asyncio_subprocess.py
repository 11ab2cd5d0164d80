"""
What the gateway needs from asyncio's subprocess support beyond its public API: closing a
child's transport. ``asyncio.subprocess.Process`` has no public ``close()``; without one its
pipes stay open until garbage collection, and ``wait()`` never ends while a descendant of the
child holds them.
"""

from __future__ import annotations

import asyncio


def process_transport(proc: asyncio.subprocess.Process) -> asyncio.SubprocessTransport:
    """The transport asyncio created for ``proc`` (``Process`` keeps it private)."""
    return proc._transport


def close_transport(proc: asyncio.subprocess.Process) -> None:
    """Close ``proc``'s pipes now (and kill it if it still runs), so ``wait()`` can finish."""
    process_transport(proc).close()
