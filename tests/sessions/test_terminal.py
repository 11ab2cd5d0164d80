"""The host's side of the tools: scratch directories go with their sessions, and a session
that never had one costs its end nothing."""

import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from gateway_app.agents.sandbox import ScratchDirs
from gateway_app.sessions.terminal import ToolHost


@pytest.fixture
def tool():
    root = Path(tempfile.mkdtemp(prefix="hermes-terminal-test-"))
    tool = ToolHost()
    tool.scratch = ScratchDirs(root)
    yield tool
    shutil.rmtree(root, ignore_errors=True)


async def test_a_sessions_scratch_dir_is_removed_at_its_end(tool):
    """Tests that the directory a session's commands used is deleted when it ends."""
    path = await tool.scratch_dir(SimpleNamespace(id="s1"))
    assert path.is_dir()
    await tool.end_session("s1")
    assert not path.exists()


async def test_a_session_without_a_scratch_dir_ends_without_touching_the_disk(tool, monkeypatch):
    """Tests that ending a session that never ran a command removes nothing (no thread
    hop at every connection's end), while another session's directory stays."""
    removed = []
    monkeypatch.setattr(tool.scratch, "remove", removed.append)
    other = await tool.scratch_dir(SimpleNamespace(id="s2"))
    await tool.end_session("s1")
    assert removed == [] and other.is_dir()
