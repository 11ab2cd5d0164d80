"""The asyncio subprocess adapter, checked against a real child process so that a change of
shape in asyncio's Process (its private transport) fails here."""

import asyncio
import sys

from gateway_app.adapters.asyncio_subprocess import close_transport, process_transport


async def spawn(code: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def test_a_process_exposes_its_subprocess_transport():
    """Tests that asyncio's Process still keeps the SubprocessTransport the adapter reads."""
    proc = await spawn("import sys; sys.stdin.read()")
    transport = process_transport(proc)
    assert isinstance(transport, asyncio.SubprocessTransport)
    assert transport.get_pid() == proc.pid
    close_transport(proc)
    await proc.wait()


async def test_closing_the_transport_closes_the_pipes_and_ends_a_running_child():
    """Tests that close_transport closes the child's pipes at once and kills it if it still
    runs, so wait() ends."""
    proc = await spawn("import sys; sys.stdin.read()")
    close_transport(proc)
    assert proc.stdin.is_closing()
    assert await proc.wait() != 0
