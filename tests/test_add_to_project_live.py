"""
The README's "Add to an existing project", done as a developer would: the built wheel in a
fresh venv, ``startproject mysite`` configured only by the README's snippets, its commands
(migrate, gateway_token, the daphne launcher), then a real WebSocket round trip, the host's
own WebSocket route and its untouched admin index.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidHandshake

from tests.support.hostproject import HostProject, build_wheel
from tests.support.live import ws_rpc

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def host(tmp_path_factory) -> Iterator[HostProject]:
    """The host project, migrated, serving on a free port; its token in ``host.token``."""
    directory = tmp_path_factory.mktemp("host")
    project = HostProject(directory, build_wheel(directory / "dist"))
    with project.serving():
        yield project


@pytest.fixture
def url(host) -> str:
    return f"ws://127.0.0.1:{host.port}/api/ws"


def test_the_app_runs_from_the_installed_wheel(host):
    """Tests that the host imports gateway_app from its venv (the wheel), not the checkout."""
    where = host.run([host.python, "-c", "import gateway_app; print(gateway_app.__file__)"])
    assert where.strip().startswith(str(host.venv)), where


async def test_a_websocket_round_trip_through_the_host_project(host, url):
    """Tests create, a streamed prompt, a slash command, and a resume on a second socket."""
    async with ws_rpc(url, host.token) as rpc:
        session_id = (await rpc.call("session.create", {"title": "host"}))["session_id"]
        complete = await rpc.turn(session_id, "hello from the host")
        assert complete["text"] == "hello from the host"
        slash = await rpc.call("slash.exec", {"session_id": session_id, "command": "/help"})
        assert "/help" in json.dumps(slash)
    async with ws_rpc(url, host.token) as rpc:
        resumed = await rpc.call("session.resume", {"session_id": session_id})
    texts = [message["content"] for message in resumed["messages"]]
    assert texts[-2:] == ["hello from the host", "hello from the host"]


async def test_the_host_projects_own_websocket_route_still_works(host):
    """Tests that the host's consumer, routed after the gateway's, gets its connection: the
    app's routes end in no catch-all."""
    async with ws_connect(f"ws://127.0.0.1:{host.port}/host/echo") as ws:
        await ws.send("ping")
        assert await ws.recv() == "host echo: ping"


async def test_a_path_nobody_routes_fails_the_handshake(host):
    """Tests that without a catch-all of its own, a stray path still opens no socket."""
    with pytest.raises(InvalidHandshake):
        async with ws_connect(f"ws://127.0.0.1:{host.port}/nowhere"):
            pass


def test_the_host_projects_admin_index_is_untouched(host):
    """Tests that the host's admin index is Django's own (the gateway's links only in its app
    section), and the site's index_template is still unset."""
    script = (
        "from django.contrib import admin; from django.contrib.auth.models import User;"
        " from django.test import Client; from django.test.utils import setup_test_environment;"
        " setup_test_environment(); client = Client();"
        " client.force_login(User.objects.create_superuser('root', password='x'));"
        " index = client.get('/admin/'); section = client.get('/admin/gateway_app/');"
        " print(admin.site.index_template, index.status_code,"
        " b'gateway-links-module' in index.content, section.status_code,"
        " b'gateway-links-module' in section.content)"
    )
    output = host.run([host.python, "manage.py", "shell", "-c", script])
    # The last line: Django 5.2's shell first reports the objects it imported.
    assert output.strip().splitlines()[-1].split() == ["None", "200", "False", "200", "True"]


def test_the_site_passes_its_system_checks(host):
    """Tests that ``manage.py check`` finds nothing to report in the site the README set up
    (a channel layer, a login page the chat page can send visitors to)."""
    output = host.run([host.python, "manage.py", "check", "--fail-level", "WARNING"])
    assert "no issues" in output


def test_the_chat_page_sends_visitors_to_the_login_url(host):
    """Tests that the chat page, under the host's /gateway/, sends an anonymous visitor to
    the README's LOGIN_URL, the host's admin login."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as redirect:
        opener.open(f"http://127.0.0.1:{host.port}/gateway/chat/", timeout=10)
    assert redirect.value.code == 302
    assert redirect.value.headers["Location"] == "/admin/login/?next=/gateway/chat/"


def test_a_query_token_is_redacted_in_the_access_log(host):
    """Tests that the README's launcher logs ``?token=`` values as ``[redacted]`` (daphne
    logs an HTTP request's query string once the request ends)."""
    path = f"/gateway/healthz?token={host.token}"
    with urllib.request.urlopen(f"http://127.0.0.1:{host.port}{path}", timeout=10) as response:
        assert response.status == 200
    logged = "GET /gateway/healthz?token=[redacted]"
    deadline = time.monotonic() + 10
    while logged not in host.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert logged in host.log()
    assert host.token not in host.log()
