"""Tests for the slash worker child, driven as a real subprocess over its JSON-lines protocol."""

from __future__ import annotations

import json
import platform
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from gateway_app.slash import worker as slash_worker
from gateway_app.slash.commands import COMMAND_NAMES, COMMANDS, SKINS
from tests.support.procs import assert_gone_sync, is_running

BASE_DIR = Path(__file__).resolve().parents[2]
WORKER_ARGV = [sys.executable, "-m", "gateway_app.slash.worker"]
REPLY_TIMEOUT_S = 10.0


def _read_line(stream: Any, timeout: float = REPLY_TIMEOUT_S) -> bytes:
    ready, _, _ = select.select([stream], [], [], timeout)
    assert ready, "no reply from the slash worker in time"
    return stream.readline()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            stream.close()


@pytest.fixture
def worker() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        WORKER_ARGV, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=BASE_DIR
    )
    try:
        yield proc
    finally:
        _stop(proc)
        assert_gone_sync([proc.pid], within=0)


def ask(proc: subprocess.Popen[bytes], request: dict[str, Any] | bytes) -> dict[str, Any]:
    """Send one request line (a dict, or raw bytes) and return the parsed reply line."""
    assert proc.stdin is not None and proc.stdout is not None
    line = request if isinstance(request, bytes) else json.dumps(request).encode()
    proc.stdin.write(line.rstrip(b"\n") + b"\n")
    proc.stdin.flush()
    return json.loads(_read_line(proc.stdout))


def run(
    proc: subprocess.Popen[bytes], command: str, request_id: int = 1, **context: Any
) -> dict[str, Any]:
    return ask(proc, {"id": request_id, "command": command, "context": context})


def test_every_catalog_command_has_a_handler() -> None:
    """Tests that the worker implements exactly the commands the catalog advertises."""
    assert set(slash_worker.HANDLERS) == COMMAND_NAMES


def test_help_lists_every_command_with_usage(worker: subprocess.Popen[bytes]) -> None:
    """Tests that /help lists each catalog command with its usage and description."""
    reply = run(worker, "/help", request_id=7)
    assert reply["id"] == 7
    assert reply["effects"] == {}
    for spec in COMMANDS:
        assert spec.usage in reply["output"]
        assert spec.description in reply["output"]


def test_title_sets_title_effect(worker: subprocess.Popen[bytes]) -> None:
    """Tests that /title <text> answers with a title effect holding the text."""
    reply = run(worker, "/title   My  new title ")
    assert reply["effects"] == {"title": "My new title"}
    assert "My new title" in reply["output"]


def test_title_without_text_shows_usage(worker: subprocess.Popen[bytes]) -> None:
    """Tests that /title with no text returns a usage message and no effect."""
    reply = run(worker, "/title", title="Old")
    assert "Usage: /title <text>" in reply["output"]
    assert reply["effects"] == {}


def test_status_summarizes_session(worker: subprocess.Popen[bytes]) -> None:
    """Tests that /status reports session id, title, status, message count, skin and pid."""
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    reply = run(
        worker,
        "/status",
        session_id="abc123",
        title="Chat",
        status="idle",
        messages=messages,
        skin="mono",
    )
    output = reply["output"]
    for expected in ("abc123", "Chat", "idle", "Messages: 2", "mono", f"pid {worker.pid}"):
        assert expected in output


def test_history_prints_transcript(worker: subprocess.Popen[bytes]) -> None:
    """Tests that /history prints one "role: content" line per message."""
    messages = [{"role": "user", "content": "hi\nthere"}, {"role": "assistant", "content": "yo"}]
    reply = run(worker, "/history", messages=messages)
    assert reply["output"].splitlines() == ["user: hi there", "assistant: yo"]


def test_history_empty_says_no_messages(worker: subprocess.Popen[bytes]) -> None:
    """Tests that /history with an empty transcript answers "(no messages)"."""
    assert run(worker, "/history", messages=[])["output"] == "(no messages)"


def test_history_truncates_long_transcripts(worker: subprocess.Popen[bytes]) -> None:
    """Tests that /history cuts long messages and shows only the latest ones."""
    count = slash_worker.HISTORY_MAX_MESSAGES + 5
    messages = [{"role": "user", "content": f"m{i} " + "x" * 2000} for i in range(count)]
    lines = run(worker, "/history", messages=messages)["output"].splitlines()
    assert lines[0] == "(5 earlier messages not shown)"
    assert len(lines) == slash_worker.HISTORY_MAX_MESSAGES + 1
    assert lines[1].startswith("user: m5 ")
    assert all(len(line) <= slash_worker.HISTORY_MAX_CHARS + len("user: ") for line in lines)


def test_clear_returns_clear_effect(worker: subprocess.Popen[bytes]) -> None:
    """Tests that /clear answers with the clear effect."""
    assert run(worker, "/clear")["effects"] == {"clear": True}


def test_version_reports_gateway_and_python(worker: subprocess.Popen[bytes]) -> None:
    """Tests that /version prints the gateway version from context and the Python version."""
    output = run(worker, "/version", version="9.8.7")["output"]
    assert "9.8.7" in output
    assert platform.python_version() in output


def test_skin_lists_skins_marking_current(worker: subprocess.Popen[bytes]) -> None:
    """Tests that /skin without a name lists every skin and marks the current one."""
    reply = run(worker, "/skin", skin="midnight")
    assert reply["effects"] == {}
    assert "* midnight" in reply["output"].splitlines()
    for name in SKINS:
        assert name in reply["output"]


def test_skin_switches_to_named_skin(worker: subprocess.Popen[bytes]) -> None:
    """Tests that /skin <name> answers with a skin effect."""
    assert run(worker, "/skin solarized")["effects"] == {"skin": "solarized"}


def test_skin_unknown_name_lists_valid_skins(worker: subprocess.Popen[bytes]) -> None:
    """Tests that an unknown skin name explains the valid skins and changes nothing."""
    reply = run(worker, "/skin neon")
    assert reply["effects"] == {}
    assert "neon" in reply["output"]
    for name in SKINS:
        assert name in reply["output"]


def test_unknown_command_suggests_close_match(worker: subprocess.Popen[bytes]) -> None:
    """Tests that an unknown command gets a hint (with a close match), not a crash."""
    reply = run(worker, "/hlep")
    assert reply["output"].startswith("Unknown command /hlep.")
    assert "/help" in reply["output"]
    assert run(worker, "/foo")["output"] == "Unknown command /foo. Try /help."


def test_malformed_lines_answer_errors_and_keep_running(worker: subprocess.Popen[bytes]) -> None:
    """Tests that bad JSON, bad fields and undecodable bytes get error replies, then work on."""
    bad_json = ask(worker, b"{oops")
    assert bad_json["id"] is None and "invalid JSON" in bad_json["error"]
    assert ask(worker, b"[1, 2]")["id"] is None
    no_command = ask(worker, {"id": 3})
    assert no_command["id"] == 3 and "command" in no_command["error"]
    assert "id" in ask(worker, {"id": "x", "command": "/help"})["error"]
    assert "context" in ask(worker, {"id": 4, "command": "/help", "context": []})["error"]
    assert "messages" in run(worker, "/history", request_id=5, messages="nope")["error"]
    assert "error" in ask(worker, b"\xff\xfe\x00garbage")
    assert run(worker, "/clear", request_id=6) == {
        "id": 6,
        "output": "Transcript cleared.",
        "effects": {"clear": True},
    }


def test_command_exception_answers_error_and_keeps_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tests that an exception inside a command becomes an error reply with the request id."""

    def boom(arg: str, ctx: slash_worker.Context) -> slash_worker.Result:
        raise RuntimeError("kaput")

    monkeypatch.setitem(slash_worker.HANDLERS, "/status", boom)
    reply = slash_worker.handle_line(b'{"id": 9, "command": "/status"}')
    assert reply["id"] == 9
    assert "kaput" in reply["error"]
    assert slash_worker.handle_line(b'{"id": 10, "command": "/clear"}')["effects"] == {
        "clear": True
    }


def test_eof_exits_cleanly(worker: subprocess.Popen[bytes]) -> None:
    """Tests that the worker exits with code 0 when its stdin reaches EOF."""
    run(worker, "/help")
    assert worker.stdin is not None
    worker.stdin.close()
    assert worker.wait(timeout=REPLY_TIMEOUT_S) == 0


def test_worker_imports_no_django() -> None:
    """Tests that importing the worker pulls in no Django (fast, light child startup)."""
    code = "import sys, gateway_app.slash.worker; sys.exit('django' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=BASE_DIR, timeout=30)
    assert result.returncode == 0


# The intermediate parent shares its stdin/stdout with the worker, prints the worker's pid and
# then idles: killing it leaves the worker's stdin open (we hold the write end), so only the
# parent-death watch can end the worker.
INTERMEDIATE = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-m", "gateway_app.slash.worker"])
print(child.pid, flush=True)
time.sleep(600)
"""


def test_worker_exits_when_parent_dies() -> None:
    """Tests that the worker exits on its own soon after its parent dies, stdin still open."""
    parent = subprocess.Popen(
        [sys.executable, "-c", INTERMEDIATE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=BASE_DIR,
    )
    worker_pid = None
    try:
        assert parent.stdout is not None
        worker_pid = int(_read_line(parent.stdout))
        assert ask(parent, {"id": 1, "command": "/clear"})["id"] == 1  # worker is serving
        parent.kill()
        parent.wait(timeout=10)
        assert_gone_sync([worker_pid], within=slash_worker.PARENT_POLL_S + 3.0)
    finally:
        if worker_pid is not None and is_running(worker_pid):
            psutil.Process(worker_pid).kill()
        _stop(parent)
    assert_gone_sync([parent.pid], within=0)
