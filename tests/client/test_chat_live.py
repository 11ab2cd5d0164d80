"""``manage.py gateway_chat`` in a real terminal (tmux) against real daphne."""

from __future__ import annotations

import re
import shlex
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest

from tests.support.servers import PYTHON, REPO, Database
from tests.support.terminal import DroppingProxy, Terminal

pytestmark = pytest.mark.live

FIXTURE = Path(__file__).parent / "fixtures" / "chat_capture.txt"
PROMPT = r"^\[terminal\] >$"  # the pane's lines are read with trailing blanks stripped
WORDS = " ".join(
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty".split()
)


def chat_terminal(database: Database, token: str, url: str) -> Terminal:
    command = shlex.join([PYTHON, "manage.py", "gateway_chat", "--url", url])
    return Terminal(command, cwd=str(REPO), env={**database.env, "HERMES_TOKEN": token})


async def started(terminal: Terminal) -> AsyncIterator[Terminal]:
    """Start the chat, wait for its first prompt; afterwards no process may be left."""
    terminal.start()
    try:
        await terminal.wait_for(PROMPT)
        yield terminal
    finally:
        left = terminal.stop()
        assert left == [], f"processes left after kill-server: {left}"


@pytest.fixture
async def chat(database, server, token) -> AsyncIterator[Terminal]:
    async for terminal in started(chat_terminal(database, token, server.url)):
        yield terminal


async def submit(chat: Terminal, line: str) -> None:
    chat.type(line)
    chat.send("Enter")


async def test_a_prompt_streams_its_reply(chat):
    """Tests that the echo agent's reply to a prompt shows under it, then a fresh prompt."""
    await submit(chat, "hello from the terminal")
    await chat.wait_for(r"^hello from the terminal\n\[terminal\] >$")


async def test_a_slash_command_prints_its_output(chat):
    """Tests that a /command runs through slash.exec and its output is printed."""
    await submit(chat, "/title renamed here")
    await chat.wait_for(r"renamed here")


async def test_tab_completes_a_slash_command_from_the_gateway(chat):
    """Tests that Tab after /he completes to /help (complete.slash) and Enter runs it."""
    chat.type("/he")
    chat.send("Tab")
    await chat.wait_for(r"> /help$")
    chat.send("Enter")
    await chat.wait_for(r"^  /help +List the available slash commands\.")


async def test_an_approval_is_asked_and_answered_inline(chat):
    """Tests that !tool asks once/session/deny in the terminal and the answer reaches the turn."""
    await submit(chat, "!tool ls -la")
    await chat.wait_for(r"approve terminal: Run command: ls -la\? \[o\]nce \[s\]ession \[d\]eny >$")
    await submit(chat, "d")
    await chat.wait_for(r"^denied: ls -la\n\[terminal\] >$")


async def test_ctrl_c_interrupts_a_running_reply(chat):
    """Tests that Ctrl-C during a long turn interrupts it (session.interrupt) at once."""
    await submit(chat, "!sleep 20 a b c d e f g h i j")
    await chat.wait_for(r"^a ")
    chat.send("C-c")
    match = await chat.wait_for(r"(?s)h i j\n(.*)\n\[interrupted\]\n\[terminal\] >$", within=10)
    assert "j" not in match.group(1)  # the reply stopped before its last word


async def test_ctrl_d_quits(database, server, token):
    """Tests that Ctrl-D at the prompt ends the chat (its pane, then the tmux session, close)."""
    terminal = chat_terminal(database, token, server.url)
    async for running in started(terminal):
        running.send("C-d")
        psutil.Process(running.pids[1]).wait(timeout=15)


async def test_a_dropped_connection_is_shown_and_the_turn_continues(database, server, token):
    """Tests that a socket dropped mid-reply shows reconnecting/reconnected, each word once."""
    proxy = await DroppingProxy(server.port).start()
    url = f"ws://127.0.0.1:{proxy.port}/api/ws"
    try:
        async for chat in started(chat_terminal(database, token, url)):
            await submit(chat, f"!sleep 3 {WORDS}")
            await chat.wait_for(r"^one two three four ")
            proxy.drop()
            await chat.wait_for(r"^reconnecting… \(connection dropped\)$")
            await chat.wait_for(r"^reconnected$")
            # The echoed input wraps at 120 columns; the reply starts after its last word.
            match = await chat.wait_for(r"(?s)twenty\n(.*)\n\[terminal\] >$")
            status = re.compile(r"^(reconnecting…|reconnected|retrying in).*$", re.MULTILINE)
            reply = status.sub("", match.group(1))
            assert reply.split() == WORDS.split()
            assert proxy.accepted == 2
    finally:
        await proxy.stop()


NORMALIZE = [
    (re.compile(r"\b[0-9a-f]{32}\b"), "<session-id>"),
    (re.compile(r"\b[0-9a-f]{8}\b"), "<id>"),
]


def normalized(screen: str) -> str:
    for pattern, replacement in NORMALIZE:
        screen = pattern.sub(replacement, screen)
    return screen + "\n"


@pytest.fixture
async def own_chat(request, database, server) -> AsyncIterator[Terminal]:
    """A chat as a user of the test's own, so the session list holds only its sessions."""
    token = database.token(request.node.name[:40])
    async for terminal in started(chat_terminal(database, token, server.url)):
        yield terminal


async def test_sessions_are_listed_created_and_switched(own_chat):
    """Tests that :new starts a session, :sessions numbers them and :switch N resumes one."""
    chat = own_chat
    await submit(chat, "first words")
    await chat.wait_for(r"^first words\n" + PROMPT)
    await submit(chat, ":new second")
    await chat.wait_for(r"^\[second\] >$")
    await submit(chat, ":sessions")
    listing = await chat.wait_for(r"^( .*\n\*.*|\*.*\n .*)\n\[second\] >$")
    first = next(line for line in listing.group(1).splitlines() if "terminal" in line)
    number = first.split()[0]
    await submit(chat, f":switch {number}")
    await chat.wait_for(
        r"^  assistant: first words\nswitched to [0-9a-f]{32} \(terminal\)\n" + PROMPT
    )


async def test_a_scripted_chat_matches_the_recorded_capture(own_chat):
    """Tests that a whole scripted chat reads as the committed capture (ids normalized)."""
    chat = own_chat
    await submit(chat, "hello world")
    await chat.wait_for(r"^hello world\n" + PROMPT)
    chat.type("/he")
    chat.send("Tab")
    await chat.wait_for(r"> /help$")
    chat.send("Enter")
    await chat.wait_for(r"/skin \[name\].*\n" + PROMPT)
    await submit(chat, "!tool echo hi")
    await chat.wait_for(r"\[d\]eny >$")
    await submit(chat, "once")
    await chat.wait_for(r"^ran: echo hi\n" + PROMPT)
    await submit(chat, "!clarify which colour?")
    await chat.wait_for(r"\? which colour\? >$")
    await submit(chat, "green")
    await chat.wait_for(r"^green\n" + PROMPT)
    await submit(chat, ":sessions")
    await chat.wait_for(r"msgs  terminal\n" + PROMPT)
    await submit(chat, ":help")
    await chat.wait_for(r"Ctrl-D \(or :quit\) quits\.\n" + PROMPT)
    assert normalized(chat.screen()) == FIXTURE.read_text()
