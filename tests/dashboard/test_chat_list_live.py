"""The chat page's session sidebar over a long history, in real chromium against daphne."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from benchmarks.history import fill
from tests.support.servers import Database, GatewayServer

pytestmark = pytest.mark.live

PASSWORD = "correct-horse-battery-staple"
STORED = 70


@pytest.fixture(scope="module")
def database(tmp_path_factory) -> Database:
    """A user with more stored sessions than one page of session.list."""
    database = Database(tmp_path_factory.mktemp("chat-list"))
    database.create_superuser("lister", PASSWORD)
    fill(database.path, STORED, username="lister")
    return database


@pytest.fixture
def server(database) -> Iterator[GatewayServer]:
    with GatewayServer(database) as running:
        yield running


def test_the_sidebar_loads_the_next_page_when_scrolled_to_its_end(server, browser):
    """Tests that the chat page lists the first 50 sessions and the rest once the end of
    the list scrolls into view, each session once."""
    context = browser.new_context(viewport={"width": 1200, "height": 760})
    context.set_default_timeout(15_000)
    try:
        page = context.new_page()
        page.goto(f"{server.http_url}/admin/login/?next=/chat/")
        page.fill("#id_username", "lister")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_url("**/chat/")
        items = page.locator("[data-testid=session-item]")
        page.wait_for_selector("[data-testid=session-more]", state="attached")
        assert items.count() == 50
        page.locator("[data-testid=session-more]").scroll_into_view_if_needed()
        page.wait_for_function(
            f"document.querySelectorAll('[data-testid=session-item]').length === {STORED}"
        )
        ids = items.evaluate_all("nodes => nodes.map(n => n.dataset.sessionId)")
        assert len(set(ids)) == STORED
        assert page.locator("[data-testid=session-more]").count() == 0
    finally:
        context.close()
