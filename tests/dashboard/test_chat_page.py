"""The chat page in a host project: its WebSocket path from the setting, and no dependency on
django.contrib.admin (login at LOGIN_URL, its own logout, admin links only with the admin)."""

from __future__ import annotations

import pytest
from django.conf import global_settings
from django.contrib.auth import SESSION_KEY
from django.urls import reverse

pytestmark = pytest.mark.django_db

CHAT = "/gateway/chat/"


@pytest.fixture
def without_admin(settings) -> None:
    """Settings of a host project that never installed the admin (Django's LOGIN_URL)."""
    settings.INSTALLED_APPS = [
        app for app in settings.INSTALLED_APPS if app != "django.contrib.admin"
    ]
    settings.ROOT_URLCONF = "tests.dashboard.urls_without_admin"
    settings.LOGIN_URL = global_settings.LOGIN_URL


def test_chat_page_renders_for_staff_without_the_admin(without_admin, client, admin_user):
    """Tests that the chat page renders with the admin not installed, even for staff (whose
    admin links it leaves out), and logs out through the app's own view."""
    client.force_login(admin_user)
    response = client.get(CHAT)
    assert response.status_code == 200
    assert b"gateway_app/chat.js" in response.content
    assert b"/admin/" not in response.content
    assert b'action="/gateway/logout/"' in response.content


def test_chat_page_sends_anonymous_users_to_the_login_url(without_admin, client):
    """Tests that an anonymous visitor goes to settings.LOGIN_URL, not the admin's login."""
    response = client.get(CHAT)
    assert response.status_code == 302
    assert response["Location"] == f"{global_settings.LOGIN_URL}?next={CHAT}"


def test_chat_logout_ends_the_login_without_the_admin(without_admin, client, alice):
    """Tests that the chat page's logout ends the login and goes back to the chat page (which
    then asks for a login), with no admin template to render."""
    client.force_login(alice)
    response = client.post("/gateway/logout/")
    assert response.status_code == 302
    assert response["Location"] == CHAT
    assert SESSION_KEY not in client.session


def test_chat_logout_follows_logout_redirect_url(without_admin, client, alice, settings):
    """Tests that a host's LOGOUT_REDIRECT_URL decides where the logout goes."""
    settings.LOGOUT_REDIRECT_URL = "/goodbye/"
    client.force_login(alice)
    assert client.post("/gateway/logout/")["Location"] == "/goodbye/"


def test_chat_page_links_the_admin_pages_for_staff_when_the_admin_is_there(client, admin_user):
    """Tests that with the admin installed and routed, staff get the live page and admin links."""
    client.force_login(admin_user)
    content = client.get("/chat/").content
    assert reverse("admin:gateway_app_gatewaysession_live").encode() in content
    assert f'href="{reverse("admin:index")}"'.encode() in content


def test_chat_page_leaves_admin_links_out_for_other_users(client, alice):
    """Tests that a user who is not staff sees no admin links."""
    client.force_login(alice)
    assert b"/admin/" not in client.get("/chat/").content


def test_chat_page_connects_to_the_websocket_path_option(client, alice, settings):
    """Tests that the page's socket URL is HERMES_GATEWAY["WEBSOCKET_PATH"], not a fixed one."""
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "WEBSOCKET_PATH": "gateway/socket"}
    client.force_login(alice)
    assert b'data-ws-path="/gateway/socket"' in client.get("/chat/").content
