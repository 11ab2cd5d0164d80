"""The chat page and the admin's live page in real headless chromium, against real daphne."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from websockets.sync.client import connect as ws_connect

from tests.support.poll import eventually_sync
from tests.support.servers import Database, GatewayServer

pytestmark = pytest.mark.live

GRACE_S = 2
PASSWORD = "correct-horse-battery-staple"
REFRESHES = 20
PROMPT = "hello from a real browser, streamed word by word"


@pytest.fixture(scope="module")
def database(tmp_path_factory) -> Database:
    """One migrated database for the module (its setup is the slow part); a server per test."""
    database = Database(tmp_path_factory.mktemp("dashboard"))
    database.create_superuser("admin", PASSWORD)
    return database


@pytest.fixture(scope="module")
def token(database) -> str:
    return database.token("admin")


@pytest.fixture
def server(database, output_dir, request) -> Iterator[GatewayServer]:
    """Daphne with a short reap grace; its log is kept in test-output/ for post-mortems."""
    log_path = output_dir / f"{request.node.name}.daphne.log"
    with GatewayServer(
        database, env={"HERMES_TUI_WS_ORPHAN_REAP_GRACE_S": GRACE_S}, log_path=log_path
    ) as running:
        yield running
    assert running.process is not None and running.process.poll() is not None
    assert running.slash_workers() == set()


@pytest.fixture
def context(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 760})
    context.set_default_timeout(15_000)
    yield context
    context.close()


def log_in(page, server: GatewayServer, next_path: str = "/chat/") -> None:
    """Through the admin login form, like a person would."""
    page.goto(f"{server.http_url}/admin/login/?next={next_path}")
    page.fill("#id_username", "admin")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"**{next_path}")


def wait_resumed(page, session_id: str) -> None:
    page.wait_for_selector(
        f'#chat[data-ready="1"][data-session="{session_id}"][data-connection="up"]'
    )


def transcript(page) -> list[tuple[str, str]]:
    """(kind, text) of every transcript entry, in order; slash-command output excluded."""
    rows = page.eval_on_selector_all(
        "[data-testid=transcript] > .msg",
        "nodes => nodes.map(n => [n.dataset.testid, n.querySelector('.msg-body').textContent])",
    )
    return [(kind, text) for kind, text in rows if kind != "msg-slash"]


def list_sessions(server: GatewayServer, token: str) -> list[dict]:
    """``session.list`` for the same user over a plain websockets client (no Origin)."""
    headers = {"Authorization": f"Bearer {token}"}
    with ws_connect(server.url, additional_headers=headers, open_timeout=10) as ws:
        ready = json.loads(ws.recv(timeout=10))
        assert ready["params"]["type"] == "gateway.ready"
        ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "session.list"}))
        while True:
            message = json.loads(ws.recv(timeout=10))
            if message.get("id") == 1:
                return message["result"]["sessions"]


def test_refreshing_the_chat_page_resumes_one_session_without_duplicates(
    server, token, context, output_dir
):
    """Tests that 20 page refreshes resume the same session with an intact transcript, leave
    no session behind, and that slash workers end up matching the attached sessions."""
    earlier = {s["session_id"] for s in list_sessions(server, token)}
    page = context.new_page()
    log_in(page, server)
    page.wait_for_selector('#chat[data-connection="up"][data-ready="1"]')

    page.fill("[data-testid=new-title]", "refresh me")
    page.click("[data-testid=new-session]")
    page.wait_for_function("document.getElementById('chat').dataset.session !== ''")
    session_id = page.get_attribute("#chat", "data-session")
    assert len(session_id) == 32

    page.fill("[data-testid=prompt-input]", PROMPT)
    page.press("[data-testid=prompt-input]", "Enter")
    page.wait_for_selector("[data-testid=msg-assistant][data-state=done]")
    assert transcript(page) == [("msg-user", PROMPT), ("msg-assistant", PROMPT)]

    # A slash command, typed with Tab completion, starts the session's slash worker.
    page.fill("[data-testid=prompt-input]", "/sta")
    page.wait_for_selector("[data-testid=slash-hint]:has-text('/status')")
    page.press("[data-testid=prompt-input]", "Tab")
    assert page.input_value("[data-testid=prompt-input]") == "/status "
    page.press("[data-testid=prompt-input]", "Enter")
    page.wait_for_selector("[data-testid=msg-slash][data-state=done]")
    assert session_id in page.text_content("[data-testid=msg-slash]")
    workers_before = server.slash_workers()
    assert len(workers_before) == 1

    for attempt in range(REFRESHES):
        page.reload()
        wait_resumed(page, session_id)
        page.wait_for_selector("[data-testid=msg-assistant][data-state=done]")
        assert page.get_attribute("#chat", "data-last-resume") == "fresh", attempt
        assert transcript(page) == [("msg-user", PROMPT), ("msg-assistant", PROMPT)], attempt

    # The socket still streams after all those refreshes, and nothing is doubled.
    second = "and once more after twenty refreshes"
    page.fill("[data-testid=prompt-input]", second)
    page.press("[data-testid=prompt-input]", "Enter")
    page.wait_for_function(
        "document.querySelectorAll('[data-testid=msg-assistant][data-state=done]').length === 2"
    )
    assert transcript(page) == [
        ("msg-user", PROMPT),
        ("msg-assistant", PROMPT),
        ("msg-user", second),
        ("msg-assistant", second),
    ]
    page.wait_for_selector(
        f"[data-testid=session-item][data-session-id='{session_id}'][data-status=live]"
        ":has-text('4 msg')"
    )
    chat_png = output_dir / "chat.png"
    page.screenshot(path=str(chat_png), full_page=True)
    print(f"chat screenshot: {chat_png}")

    sessions = [s for s in list_sessions(server, token) if s["session_id"] not in earlier]
    detached = [s for s in sessions if s["status"] == "detached"]
    attached = [s for s in sessions if s["attached"]]
    print(
        f"after {REFRESHES} refreshes: sessions={len(sessions)} detached={len(detached)} "
        f"attached={len(attached)} slash workers before={sorted(workers_before)} "
        f"now={sorted(server.slash_workers())}"
    )
    assert [s["session_id"] for s in sessions] == [session_id]
    assert len(detached) <= REFRESHES
    assert [s["session_id"] for s in attached] == [session_id]

    # Past the grace period the surviving slash workers are exactly the attached sessions'.
    time.sleep(GRACE_S + 3)
    workers_after_grace = server.slash_workers()
    print(f"after grace ({GRACE_S}s + 3s): slash workers={sorted(workers_after_grace)}")
    assert len(workers_after_grace) == len(attached) == 1
    assert workers_after_grace == workers_before  # the same process survived every refresh

    # Closing the tab detaches the session; the reap ends its slash worker.
    page.close()
    eventually_sync(lambda: server.slash_workers() == set(), within=GRACE_S + 10, interval=0.2)
    sessions = [s for s in list_sessions(server, token) if s["session_id"] not in earlier]
    print(f"after closing the tab + grace: sessions={[(s['status']) for s in sessions]}")
    assert [s["status"] for s in sessions] == ["closed"]
    assert server.slash_workers() == set()


def assistant_texts(page) -> list[str]:
    return [text for kind, text in transcript(page) if kind == "msg-assistant"]


def test_refresh_and_socket_drop_mid_turn_show_each_reply_once(server, context, output_dir):
    """Tests that a refresh and a dropped socket during running turns, and a refresh while an
    approval is pending, neither duplicate nor lose streamed text or questions."""
    routes = []

    def route(ws):
        ws.connect_to_server()
        routes.append(ws)

    page = context.new_page()
    page.route_web_socket("**/api/ws", route)
    log_in(page, server)
    page.wait_for_selector('#chat[data-connection="up"][data-ready="1"]')
    page.click("[data-testid=new-session]")
    page.wait_for_function("document.getElementById('chat').dataset.session !== ''")
    session_id = page.get_attribute("#chat", "data-session")
    prompt = page.locator("[data-testid=prompt-input]")
    streaming = "[data-testid=msg-assistant][data-state=streaming]"

    # 1. Refresh mid-turn: the fresh resume replays the running turn from its start.
    words = " ".join(f"w{i}" for i in range(12))
    prompt.fill(f"!sleep 3 {words}")
    prompt.press("Enter")
    page.wait_for_function(
        f"(document.querySelector('{streaming} .msg-body')?.textContent || '').length >= 6"
    )
    page.reload()
    wait_resumed(page, session_id)
    page.wait_for_selector("[data-testid=msg-assistant][data-state=done]")
    assert transcript(page) == [("msg-user", f"!sleep 3 {words}"), ("msg-assistant", words)]

    # 2. Socket drop mid-turn: the page reconnects and resumes from its last seq.
    more = " ".join(f"x{i}" for i in range(12))
    prompt.fill(f"!sleep 3 {more}")
    prompt.press("Enter")
    page.wait_for_function(
        f"(document.querySelector('{streaming} .msg-body')?.textContent || '').length >= 6"
    )
    routes[-1].close(code=1011, reason="test drops the socket")
    page.wait_for_selector('#chat[data-connection="down"]')
    wait_resumed(page, session_id)
    assert page.get_attribute("#chat", "data-last-resume") == "incremental"
    page.wait_for_function(
        "document.querySelectorAll('[data-testid=msg-assistant][data-state=done]').length === 2"
    )
    assert assistant_texts(page) == [words, more]

    # 3. Refresh while an approval is pending: the question is shown again and answerable.
    prompt.fill("!tool echo hi")
    prompt.press("Enter")
    page.wait_for_selector("[data-testid=approval]")
    page.reload()
    wait_resumed(page, session_id)
    page.wait_for_selector("[data-testid=approval] [data-testid=approve-once]")
    assert page.locator("[data-testid=approval]").count() == 1
    page.screenshot(path=str(output_dir / "chat-approval.png"), full_page=True)
    page.click("[data-testid=approve-once]")
    page.wait_for_function(
        "document.querySelectorAll('[data-testid=msg-assistant][data-state=done]').length === 3"
    )
    assert assistant_texts(page) == [words, more, "ran: echo hi"]
    assert page.get_attribute("[data-testid=approval]", "data-state") == "answered"

    # 4. A clarify question, answered in the page.
    prompt.fill("!clarify favourite colour?")
    prompt.press("Enter")
    page.fill("[data-testid=clarify-input]", "ultramarine")
    page.click("[data-testid=clarify-send]")
    page.wait_for_function(
        "document.querySelectorAll('[data-testid=msg-assistant][data-state=done]').length === 4"
    )
    assert assistant_texts(page)[-1] == "ultramarine"

    # After one more refresh the stored transcript holds every turn exactly once.
    page.reload()
    wait_resumed(page, session_id)
    assert transcript(page) == [
        ("msg-user", f"!sleep 3 {words}"),
        ("msg-assistant", words),
        ("msg-user", f"!sleep 3 {more}"),
        ("msg-assistant", more),
        ("msg-user", "!tool echo hi"),
        ("msg-tool", "ran: echo hi"),
        ("msg-assistant", "ran: echo hi"),
        ("msg-user", "!clarify favourite colour?"),
        ("msg-assistant", "ultramarine"),
    ]


# Every change of the first reply's text, from the page's first script on (a reload included).
RECORD_REPLY = """
window.replyTexts = [];
new MutationObserver(() => {
  const body = document.querySelector("[data-testid=msg-assistant] .msg-body");
  const text = body ? body.textContent.trim() : "";
  if (text && text !== window.replyTexts.at(-1)) window.replyTexts.push(text);
}).observe(document, { childList: true, subtree: true, characterData: true });
"""


def test_a_refresh_late_in_a_long_turn_shows_every_word_once_at_every_moment(
    database, context, output_dir
):
    """Tests that a refresh at 80% of a stream longer than the replay buffer shows the reply
    from its first word, each word once and in order, at every moment until it is done."""
    log_path = output_dir / "late-refresh.daphne.log"
    options = json.dumps({"REPLAY_BUFFER_EVENTS": 20})
    words = [f"w{i}" for i in range(160)]
    with GatewayServer(
        database, env={"HERMES_GATEWAY_OPTIONS": options}, log_path=log_path
    ) as server:
        page = context.new_page()
        page.add_init_script(RECORD_REPLY)
        log_in(page, server)
        page.wait_for_selector('#chat[data-connection="up"][data-ready="1"]')
        page.click("[data-testid=new-session]")
        page.wait_for_function("document.getElementById('chat').dataset.session !== ''")
        session_id = page.get_attribute("#chat", "data-session")
        prompt = page.locator("[data-testid=prompt-input]")
        prompt.fill(f"!sleep 8 {' '.join(words)}")
        prompt.press("Enter")
        page.wait_for_function(
            "(window.replyTexts.at(-1) || '').split(' ').length >= 128", polling=50
        )
        page.reload()
        wait_resumed(page, session_id)
        page.wait_for_selector("[data-testid=msg-assistant][data-state=done]")
        texts = page.evaluate("window.replyTexts")
    assert texts[-1] == " ".join(words)
    # Still streaming when the page came back, and every moment showed a prefix of the reply.
    assert len(texts) > 1
    for text in texts:
        assert words[: len(text.split(" "))] == text.split(" "), text[:80]


def test_live_page_shows_real_host_numbers_to_staff(server, context, output_dir):
    """Tests that the admin's live page, linked from the admin index, polls real numbers:
    an open chat page counts as a connection and its session as live."""
    chat = context.new_page()
    log_in(chat, server)
    chat.wait_for_selector('#chat[data-connection="up"][data-ready="1"]')
    chat.click("[data-testid=new-session]")
    chat.wait_for_function("document.getElementById('chat').dataset.session !== ''")

    live = context.new_page()
    live.goto(f"{server.http_url}/admin/")
    live.click("[data-testid=live-link]")
    live.wait_for_url("**/admin/gateway_app/gatewaysession/live/")
    live.wait_for_function(
        "Number(document.querySelector('[data-testid=live-connections]').textContent) >= 1"
        " && Number(document.querySelector('[data-testid=live-sessions]').textContent) >= 1"
    )
    assert "Live gateway" in live.title()
    by_status = live.text_content("[data-testid=live-by-status]")
    assert "live" in by_status
    # It keeps polling: a later update arrives on its own.
    polls = int(live.get_attribute(".live-gateway", "data-polls"))
    live.wait_for_function(
        f"Number(document.querySelector('.live-gateway').dataset.polls) > {polls}",
        timeout=5_000,
    )
    live_png = output_dir / "live.png"
    live.screenshot(path=str(live_png), full_page=True)
    print(f"live screenshot: {live_png}")

    # Closing the chat tab: the connection goes away, and after the grace the session is reaped.
    chat.close()
    live.wait_for_function(
        "Number(document.querySelector('[data-testid=live-connections]').textContent) === 0"
    )
    live.wait_for_selector("[data-testid=live-counters] td:text-is('reaped')")
    live.wait_for_function(
        "Number(document.querySelector('[data-testid=live-sessions]').textContent) === 0"
    )


NO_OVERFLOW = "document.documentElement.scrollWidth <= window.innerWidth"


def header_text(page) -> str:
    return page.text_content("[data-testid=session-header]") or ""


def open_sidebar_if_collapsed(page) -> None:
    """On a narrow screen the session list sits behind its toggle."""
    toggle = page.locator("[data-testid=sidebar-toggle]")
    if toggle.is_visible():
        toggle.click()
        page.wait_for_selector('#chat[data-sidebar="open"]')


@pytest.mark.parametrize("width", [1280, 390])
def test_chat_page_shows_the_session_title_and_fits_the_width(server, browser, output_dir, width):
    """Tests that the header names the session by its title right after create and after a
    reload, and that the page never scrolls sideways, at a desktop and a phone width."""
    context = browser.new_context(viewport={"width": width, "height": 800})
    context.set_default_timeout(15_000)
    try:
        page = context.new_page()
        log_in(page, server)
        page.wait_for_selector('#chat[data-connection="up"][data-ready="1"]')
        assert page.evaluate(NO_OVERFLOW), page.evaluate("document.documentElement.scrollWidth")

        open_sidebar_if_collapsed(page)
        page.fill("[data-testid=new-title]", "first chat")
        page.click("[data-testid=new-session]")
        page.wait_for_function("document.getElementById('chat').dataset.session !== ''")
        session_id = page.get_attribute("#chat", "data-session")
        expected = f"first chat · {session_id[:8]}"
        page.wait_for_function(
            "t => document.querySelector('[data-testid=session-header]').textContent === t",
            arg=expected,
        )

        page.reload()
        wait_resumed(page, session_id)
        page.wait_for_function(
            "t => document.querySelector('[data-testid=session-header]').textContent === t",
            arg=expected,
        )
        assert header_text(page) == expected

        # The prompt input is whole on screen and usable, and nothing overflows sideways.
        prompt = page.locator("[data-testid=prompt-input]")
        box = prompt.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
        page.fill("[data-testid=prompt-input]", "fits")
        page.press("[data-testid=prompt-input]", "Enter")
        page.wait_for_selector("[data-testid=msg-assistant][data-state=done]")
        assert page.evaluate(NO_OVERFLOW), page.evaluate("document.documentElement.scrollWidth")
        page.screenshot(path=str(output_dir / f"chat-{width}.png"), full_page=True)

        open_sidebar_if_collapsed(page)
        item = page.locator(f"[data-testid=session-item][data-session-id='{session_id}']")
        assert item.is_visible()
        assert page.evaluate(NO_OVERFLOW), page.evaluate("document.documentElement.scrollWidth")
        page.screenshot(path=str(output_dir / f"chat-{width}-sidebar.png"), full_page=True)
    finally:
        context.close()


def test_narrow_chat_page_collapses_the_sidebar_behind_a_toggle(server, browser, output_dir):
    """Tests that at 390 px the session list starts hidden, its toggle shows it, and picking
    a session hides it again so the transcript has the width."""
    context = browser.new_context(viewport={"width": 390, "height": 800})
    context.set_default_timeout(15_000)
    try:
        page = context.new_page()
        log_in(page, server)
        page.wait_for_selector('#chat[data-connection="up"][data-ready="1"]')
        toggle = page.locator("[data-testid=sidebar-toggle]")
        sidebar = page.locator("[data-testid=sidebar]")
        assert toggle.is_visible()
        assert toggle.get_attribute("aria-expanded") == "false"
        assert not sidebar.is_visible()

        toggle.click()
        page.wait_for_selector("[data-testid=sidebar]", state="visible")
        assert toggle.get_attribute("aria-expanded") == "true"
        page.click("[data-testid=new-session]")
        page.wait_for_function("document.getElementById('chat').dataset.session !== ''")
        page.wait_for_selector("[data-testid=sidebar]", state="hidden")
        assert page.locator("[data-testid=prompt-input]").is_visible()
        assert page.evaluate(NO_OVERFLOW)
        page.screenshot(path=str(output_dir / "chat-390-collapsed.png"), full_page=True)
    finally:
        context.close()


def test_favicon_is_served_and_linked(server, context):
    """Tests that /favicon.ico resolves to an image and that the chat page and the admin link
    an icon that loads."""
    page = context.new_page()
    response = page.goto(f"{server.http_url}/favicon.ico")
    assert response is not None and response.status == 200
    assert response.headers["content-type"].startswith("image/")

    log_in(page, server, next_path="/chat/")
    for path in ("/chat/", "/admin/"):
        page.goto(f"{server.http_url}{path}")
        href = page.eval_on_selector("link[rel=icon]", "link => link.href")
        icon = page.request.get(href)
        assert icon.status == 200, (path, href)
        assert icon.headers["content-type"].startswith("image/"), (path, href)


def line_height(page, selector: str) -> float:
    """The CSS line height of an element in pixels ("normal" taken as 1.2 em)."""
    return page.eval_on_selector(
        selector,
        "el => { const s = getComputedStyle(el); const lh = parseFloat(s.lineHeight);"
        " return Number.isNaN(lh) ? parseFloat(s.fontSize) * 1.2 : lh; }",
    )


@pytest.mark.parametrize("path", ["/admin/", "/admin/gateway_app/"], ids=["index", "app-index"])
def test_admin_gateway_block_reads_like_an_app_module(server, browser, output_dir, path):
    """Tests that at 1280 px the admin's "Hermes gateway" block shows its links on one line
    each (not a letter per line), as rows under one caption, and that the heading is not
    repeated by a second caption of the same name."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(15_000)
    try:
        page = context.new_page()
        log_in(page, server, next_path=path)
        links = {"Live gateway": "[data-testid=live-link]", "Chat": "[data-testid=chat-link]"}
        for name, selector in links.items():
            link = page.locator(f"#gateway-links-module {selector}")
            assert link.text_content().strip() == name
            box = link.bounding_box()
            assert box is not None
            one_line = line_height(page, f"#gateway-links-module {selector}")
            assert box["height"] < 2 * one_line, (name, box, one_line)
            assert box["width"] > box["height"], (name, box)
        captions = page.eval_on_selector_all(
            "#content-main caption", "nodes => nodes.map(n => n.textContent.trim())"
        )
        assert captions.count("Hermes gateway") == 1, captions
        slug = "index" if path == "/admin/" else "app-index"
        page.screenshot(path=str(output_dir / f"admin-{slug}-1280.png"), full_page=True)
    finally:
        context.close()


def create_sessions(server: GatewayServer, token: str, count: int) -> list[str]:
    """``session.create`` ``count`` times over a token socket: rows for the changelist."""
    headers = {"Authorization": f"Bearer {token}"}
    created = []
    with ws_connect(server.url, additional_headers=headers, open_timeout=10) as ws:
        json.loads(ws.recv(timeout=10))
        for n in range(count):
            title = f"a session with a fairly long title number {n}"
            ws.send(
                json.dumps(
                    {
                        "jsonrpc": "2.0",
                        "id": n,
                        "method": "session.create",
                        "params": {"title": title},
                    }
                )
            )
            while True:
                message = json.loads(ws.recv(timeout=10))
                if message.get("id") == n:
                    created.append(message["result"]["session_id"])
                    break
    return created


def test_session_changelist_shows_every_column_at_1280(server, token, browser, output_dir):
    """Tests that at 1280 px every column of the session changelist is on screen at once:
    the last header ends inside the viewport and inside the table's scroll area, which has
    nothing hidden to scroll to (Django's scroll area hides its bar until used)."""
    create_sessions(server, token, 2)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(15_000)
    try:
        page = context.new_page()
        log_in(page, server, next_path="/admin/gateway_app/gatewaysession/")
        page.wait_for_selector("#result_list tbody tr")
        page.screenshot(path=str(output_dir / "admin-sessions-1280.png"), full_page=True)
        last = "#result_list thead th:last-child"
        assert "messages" in page.text_content(last).lower()
        geometry = page.eval_on_selector(
            last,
            """th => {
                const area = th.closest('.results');
                return {right: th.getBoundingClientRect().right,
                        areaRight: area.getBoundingClientRect().right,
                        hidden: area.scrollWidth - area.clientWidth,
                        viewport: window.innerWidth};
            }""",
        )
        assert geometry["right"] <= geometry["viewport"], geometry
        assert geometry["right"] <= geometry["areaRight"] + 1, geometry
        assert geometry["hidden"] <= 1, geometry
        assert page.evaluate(NO_OVERFLOW), page.evaluate("document.documentElement.scrollWidth")
    finally:
        context.close()


def test_a_prompt_typed_in_one_tab_shows_in_the_other_without_reload(server, context, output_dir):
    """Tests that with two tabs on one session, a prompt typed in one appears in the other
    as it is submitted (message.user), once in each, followed by the streamed reply."""
    first = context.new_page()
    log_in(first, server)
    first.wait_for_selector('#chat[data-connection="up"][data-ready="1"]')
    first.fill("[data-testid=new-title]", "two tabs")
    first.click("[data-testid=new-session]")
    first.wait_for_function("document.getElementById('chat').dataset.session !== ''")
    session_id = first.get_attribute("#chat", "data-session")

    second = context.new_page()
    second.goto(f"{server.http_url}/chat/")
    second.wait_for_selector('#chat[data-connection="up"][data-ready="1"]')
    open_sidebar_if_collapsed(second)
    second.click(f"[data-testid=session-item][data-session-id='{session_id}'] .session-title")
    wait_resumed(second, session_id)

    text = "typed in the first tab, read in the second"
    first.fill("[data-testid=prompt-input]", f"!sleep 1 {text}")
    first.press("[data-testid=prompt-input]", "Enter")
    # The prompt shows in the other tab while its reply is still streaming.
    second.wait_for_selector(f"[data-testid=msg-user]:has-text('{text}')")
    assert second.locator("[data-testid=msg-assistant][data-state=done]").count() == 0
    for page in (first, second):
        page.wait_for_selector("[data-testid=msg-assistant][data-state=done]")
        assert transcript(page) == [("msg-user", f"!sleep 1 {text}"), ("msg-assistant", text)]
    second.screenshot(path=str(output_dir / "chat-second-tab.png"), full_page=True)

    # And the other way round, no sleep: nothing doubled in either tab.
    second.fill("[data-testid=prompt-input]", "now from the second")
    second.press("[data-testid=prompt-input]", "Enter")
    for page in (first, second):
        page.wait_for_function(
            "document.querySelectorAll('[data-testid=msg-assistant][data-state=done]').length === 2"
        )
        assert transcript(page)[2:] == [
            ("msg-user", "now from the second"),
            ("msg-assistant", "now from the second"),
        ]


HOSTILE_REPLY = (
    'Here is <img src=x onerror="window.__pwned=1"> and some code:\n\n'
    '```python\ndef greet(name):\n    return f"hi {name}"\n```\n\n'
    "[a link](javascript:window.__pwned=2) and [docs](https://example.com/)"
)


def submit_over_token(server: GatewayServer, token: str, session_id: str, text: str) -> None:
    """Send a prompt to a session from a second client (the input is one line; a reply with
    a code block needs newlines) and wait for its reply."""
    headers = {"Authorization": f"Bearer {token}"}
    with ws_connect(server.url, additional_headers=headers, open_timeout=10) as ws:
        json.loads(ws.recv(timeout=10))
        calls = [
            ("session.resume", {"session_id": session_id}),
            ("prompt.submit", {"session_id": session_id, "text": text}),
        ]
        for n, (method, params) in enumerate(calls):
            ws.send(json.dumps({"jsonrpc": "2.0", "id": n, "method": method, "params": params}))
            while json.loads(ws.recv(timeout=10)).get("id") != n:
                pass
        while True:
            message = json.loads(ws.recv(timeout=10))
            if message.get("params", {}).get("type") == "message.complete":
                return


def assert_reply_rendered_safely(page) -> None:
    assert page.evaluate("window.__pwned") is None
    assert page.locator("img[onerror]").count() == 0
    assert page.locator("[data-testid=transcript] img").count() == 0
    reply = page.locator("[data-testid=msg-assistant]").last
    code = reply.locator("pre > code")
    assert code.count() == 1
    assert code.text_content() == 'def greet(name):\n    return f"hi {name}"\n'
    assert "language-python" in (code.get_attribute("class") or "")
    # The HTML is shown as the text it is; the javascript: link is no link.
    assert '<img src=x onerror="window.__pwned=1">' in reply.text_content()
    hrefs = reply.locator("a").evaluate_all("links => links.map(a => [a.href, a.rel])")
    assert hrefs == [["https://example.com/", "noopener noreferrer"]]
    # The prompt (a user's text) stays plain text.
    prompt = page.locator("[data-testid=msg-user] .msg-body").last
    assert prompt.text_content() == HOSTILE_REPLY
    assert prompt.locator("*").count() == 0


@pytest.mark.parametrize("width", [1280, 390])
def test_markdown_replies_render_code_and_no_html(server, token, browser, output_dir, width):
    """Tests that a reply with raw HTML, a javascript: link and a fenced python block renders
    as sanitized Markdown, live and after a reload: the handler never runs, no <img> exists,
    <pre><code> shows the code and the page fits the width."""
    context = browser.new_context(viewport={"width": width, "height": 800})
    context.set_default_timeout(15_000)
    try:
        page = context.new_page()
        log_in(page, server)
        page.wait_for_selector('#chat[data-connection="up"][data-ready="1"]')
        open_sidebar_if_collapsed(page)
        page.click("[data-testid=new-session]")
        page.wait_for_function("document.getElementById('chat').dataset.session !== ''")
        session_id = page.get_attribute("#chat", "data-session")

        submit_over_token(server, token, session_id, HOSTILE_REPLY)
        page.wait_for_selector("[data-testid=msg-assistant][data-state=done]")
        assert_reply_rendered_safely(page)
        assert page.evaluate(NO_OVERFLOW), page.evaluate("document.documentElement.scrollWidth")
        page.screenshot(path=str(output_dir / f"chat-markdown-{width}.png"), full_page=True)

        page.reload()
        wait_resumed(page, session_id)
        page.wait_for_selector("[data-testid=msg-assistant][data-state=done]")
        assert_reply_rendered_safely(page)
        assert page.evaluate(NO_OVERFLOW), page.evaluate("document.documentElement.scrollWidth")
    finally:
        context.close()


def test_slash_output_and_tool_results_are_labelled_text(server, context, output_dir):
    """Tests that slash output and tool results are labelled blocks set as text, never
    Markdown, so they read apart from replies."""
    page = context.new_page()
    log_in(page, server)
    page.wait_for_selector('#chat[data-connection="up"][data-ready="1"]')
    page.click("[data-testid=new-session]")
    page.wait_for_function("document.getElementById('chat').dataset.session !== ''")
    prompt = page.locator("[data-testid=prompt-input]")
    prompt.fill("/help")
    prompt.press("Enter")
    page.wait_for_selector("[data-testid=msg-slash][data-state=done]")
    slash = page.locator("[data-testid=msg-slash]")
    assert slash.locator(".msg-label").text_content() == "slash /help"
    assert slash.locator(".msg-body *").count() == 0

    prompt.fill("!tool echo **not bold**")
    prompt.press("Enter")
    page.click("[data-testid=approve-once]")
    page.wait_for_selector("[data-testid=msg-assistant][data-state=done]")
    tool = page.locator("[data-testid=msg-tool]")
    assert tool.locator(".msg-label").text_content() == "tool terminal"
    assert tool.locator(".msg-body").text_content() == "ran: echo **not bold**"
    assert tool.locator(".msg-body *").count() == 0
    # The reply of the same text is Markdown.
    reply = page.locator("[data-testid=msg-assistant] .msg-body")
    assert reply.locator("strong").text_content() == "not bold"
    font = page.eval_on_selector("[data-testid=msg-tool]", "n => getComputedStyle(n).fontFamily")
    assert "monospace" in font
    page.screenshot(path=str(output_dir / "chat-slash-tool.png"), full_page=True)
