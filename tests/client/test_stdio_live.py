"""The client library over ``manage.py gateway_stdio``: the same API, and a respawn on exit."""

from __future__ import annotations

import pytest

from gateway_app.client import (
    Backoff,
    MessageComplete,
    MessageDelta,
    Reconnected,
    ResumeGap,
    SessionNotFound,
    connect_stdio,
)
from tests.support.servers import PYTHON, REPO, Database

pytestmark = pytest.mark.live


@pytest.fixture
def database(tmp_path) -> Database:
    database = Database(tmp_path)
    database.token("alice")  # creates the user
    return database


def stdio(database: Database, **kwargs):
    argv = [PYTHON, "manage.py", "gateway_stdio", "--user", "alice"]
    return connect_stdio(argv, cwd=str(REPO), env=database.env, **kwargs)


async def test_every_method_answers_over_stdio(database):
    """Tests that the stdio transport gives the same typed API as WebSocket, method by method."""
    async with stdio(database) as gw:
        assert gw.ready is not None and gw.ready.protocol == 1
        assert await gw.ping()
        session = await gw.create_session("over stdio")
        sid = session.session_id
        assert await gw.prompt(sid, "hello there") == "hello there"
        assert "/help" in await gw.complete("/he")
        assert "/title" in {command.name for command in await gw.commands()}
        assert "renamed" in await gw.slash(sid, "/title renamed")
        listed = {row.session_id: row for row in await gw.list_sessions()}
        assert listed[sid].title == "renamed" and listed[sid].messages == 2
        resumed = await gw.resume(sid)
        assert [m.content for m in resumed.messages] == ["hello there", "hello there"]
        history = await gw.history(sid, limit=1)
        assert [m.content for m in history.messages] == ["hello there"] and history.has_more
        assert "session.history" in {m["name"] for m in (await gw.discover())["methods"]}
        assert not await gw.interrupt(sid)
        assert await gw.close_session(sid)
        assert sid not in gw.sessions
        with pytest.raises(SessionNotFound):
            await gw.interrupt("0" * 32)


async def test_a_killed_stdio_process_is_respawned_and_its_sessions_resumed(database):
    """Tests that the process dying mid-turn respawns it, resumes, and ends the turn honestly."""
    async with stdio(database, backoff=Backoff(initial=0.05, max_attempts=5)) as gw:
        session = await gw.create_session("respawn")
        sid = session.session_id
        first_pid = gw.link.process.pid
        events = []
        async for event in gw.prompt(sid, "!sleep 4 a b c d"):
            events.append(event)
            if isinstance(event, MessageDelta):
                gw.link.abort()
        assert isinstance(events[-2], ResumeGap)
        complete = events[-1]
        assert isinstance(complete, MessageComplete) and complete.payload == {"reconciled": True}
        assert complete.text == ""  # the turn died with its process: no reply was stored
        async for event in gw.events():
            if isinstance(event, Reconnected):
                assert event.sessions == (sid,)
                break
        assert gw.link.process.pid != first_pid
        assert await gw.prompt(sid, "still here") == "still here"
