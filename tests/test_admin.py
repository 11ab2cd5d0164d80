"""The admin: sessions, tokens, and the live page (its data: tests/dashboard/test_views.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from gateway_app.models import ApiToken, GatewaySession, Message, hash_token
from gateway_app.sessions.host import get_host
from tests.support.servers import REPO

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "admin:gateway_app_gatewaysession_changelist"
CHANGE = "admin:gateway_app_gatewaysession_change"
TRANSCRIPT = "admin:gateway_app_gatewaysession_transcript"
LIVE_JSON = "admin:gateway_app_gatewaysession_live_json"


@pytest.fixture
def stored_session(alice) -> GatewaySession:
    session = GatewaySession.objects.create(user=alice, title="Alpha", host_worker="w1")
    for role, content in [("user", "hi there"), ("assistant", "hi there"), ("user", "again")]:
        Message.objects.create(session=session, role=role, content=content)
    # The store keeps this column as it writes transcript rows; these were written directly.
    GatewaySession.objects.filter(pk=session.pk).update(message_count=3)
    session.refresh_from_db()
    return session


def long_session(user, count: int) -> GatewaySession:
    """A session with ``count`` transcript rows "m0"... "m<count-1>", oldest first."""
    session = GatewaySession.objects.create(user=user, title="Long", message_count=count)
    Message.objects.bulk_create(
        Message(session=session, role="user", content=f"m{i}") for i in range(count)
    )
    return session


def page_contents(response) -> list[str]:
    return [m.content for m in response.context["transcript"].messages]


def changelist_queries(client, params=None) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(reverse(CHANGELIST), params or {}).status_code == 200
    return [q["sql"] for q in queries.captured_queries]


def message_queries(queries: list[str]) -> list[str]:
    return [sql for sql in queries if '"gateway_app_message"' in sql]


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


### Sessions ###


def test_changelist_lists_sessions_with_message_counts(admin_client, stored_session):
    """Tests that the session changelist renders with the row's stored message count."""
    response = admin_client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    rows = list(response.context["cl"].result_list)
    assert [(r.pk, r.message_count) for r in rows] == [(stored_session.pk, 3)]
    assert b"Alpha" in response.content
    assert b"Live gateway" in response.content


def test_changelist_shows_whose_owner_may_use_the_terminal(admin_client, alice, bob, admin_user):
    """Tests that the terminal column is the owner's use_terminal permission: direct, by
    group, as superuser, and never for an inactive user."""
    permission = Permission.objects.get(codename="use_terminal")
    group = Group.objects.create(name="terminal users")
    group.permissions.add(permission)
    carol = type(alice).objects.create_user("carol", is_active=False)
    carol.user_permissions.add(permission)
    alice.user_permissions.add(permission)
    bob.groups.add(group)
    dave = type(alice).objects.create_user("dave")
    for user in (alice, bob, carol, dave, admin_user):
        GatewaySession.objects.create(user=user, title=user.username)
    response = admin_client.get(reverse(CHANGELIST))
    allowed = {r.user.username: r.terminal_allowed for r in response.context["cl"].result_list}
    expected = {"alice": True, "bob": True, "carol": False, "dave": False}
    assert allowed == {**expected, admin_user.username: True}
    # Shown in the user column: alice, bob and the superuser are marked.
    assert response.content.count(b'title="may use the terminal tool"') == 3


def test_changelist_columns_are_compact(admin_client, stored_session):
    """Tests that the changelist shows attachments with the status, the slash pid with the
    host and dates as day over time with the full timestamp on hover, so rows stay narrow."""
    GatewaySession.objects.filter(pk=stored_session.pk).update(attached=2, slash_pid=4242)
    content = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert "live · 2 attached" in content
    assert "w1 · pid 4242" in content
    created = stored_session.created_at
    assert f'<time datetime="{created.isoformat()}"' in content
    assert f"{created:%b %d}<br>{created:%H:%M}</time>" in content


def test_changelist_filters_by_status_and_searches_title_and_id(admin_client, stored_session):
    """Tests that the status filter and the title/id search narrow the list."""
    url = reverse(CHANGELIST)
    assert admin_client.get(url, {"status__exact": "live"}).context["cl"].result_count == 1
    assert admin_client.get(url, {"status__exact": "closed"}).context["cl"].result_count == 0
    assert admin_client.get(url, {"q": "alp"}).context["cl"].result_count == 1
    assert admin_client.get(url, {"q": stored_session.pk[:10]}).context["cl"].result_count == 1
    assert admin_client.get(url, {"q": "nothing"}).context["cl"].result_count == 0


def test_change_form_shows_the_transcript_read_only(admin_client, stored_session):
    """Tests that the change form shows the transcript with no way to edit it."""
    url = reverse(CHANGE, args=[stored_session.pk])
    response = admin_client.get(url)
    assert response.status_code == 200
    assert not response.context["inline_admin_formsets"]
    assert page_contents(response) == ["hi there", "hi there", "again"]
    assert b"hi there" in response.content and b"again" in response.content
    assert b'name="messages-0-content"' not in response.content
    assert b'name="title"' not in response.content  # the session itself is read-only too


def test_changelist_queries_do_not_grow_with_its_rows(admin_client, alice, bob):
    """Tests that a changelist of 60 rows, each with messages, takes as many queries as one
    of 3 rows: nothing is fetched per row."""
    for user in (alice, bob):
        session = long_session(user, 2)
        GatewaySession.objects.filter(pk=session.pk).update(title=user.username)
    few = changelist_queries(admin_client)
    for index in range(58):
        long_session(alice if index % 2 else bob, 3)
    many = changelist_queries(admin_client)
    assert len(admin_client.get(reverse(CHANGELIST)).context["cl"].result_list) == 60
    assert len(many) == len(few)


def test_changelist_never_reads_the_message_table(admin_client, alice):
    """Tests that the changelist shows message counts without a COUNT over the transcripts
    (per row or joined): it reads the sessions' own column."""
    long_session(alice, 5)
    queries = changelist_queries(admin_client)
    assert message_queries(queries) == []
    assert (
        b'<td class="field-message_count">5</td>' in admin_client.get(reverse(CHANGELIST)).content
    )


def test_a_filtered_changelist_counts_only_the_filtered_rows(admin_client, stored_session):
    """Tests that a filtered changelist runs one COUNT (the filtered one), not a second over
    the whole table for "N total"."""
    queries = changelist_queries(admin_client, {"status__exact": "live"})
    counts = [sql for sql in queries if "COUNT(" in sql.upper()]
    assert len(counts) == 1 and '"status" = ' in counts[0]


def test_the_changelist_count_reads_the_session_table_alone(admin_client, stored_session):
    """Tests that the paginator's COUNT joins nothing (the owner's permissions are looked up
    for the shown page only), so it can be answered from an index of the sessions."""
    (count,) = [sql for sql in changelist_queries(admin_client) if "COUNT(" in sql.upper()]
    assert " JOIN " not in count.upper() and "EXISTS" not in count.upper()


def test_the_owner_filter_lists_only_users_who_have_sessions(admin_client, alice, bob):
    """Tests that the user filter offers the owners of sessions and no one else."""
    type(alice).objects.create_user("carol")
    long_session(alice, 1)
    long_session(bob, 1)
    response = admin_client.get(reverse(CHANGELIST))
    (owner_filter,) = [f for f in response.context["cl"].filter_specs if f.title == "user"]
    assert [name for _, name in owner_filter.lookup_choices] == ["alice", "bob"]


def test_the_changelist_filters_do_not_read_every_session(admin_client, alice, bob):
    """Tests that no filter makes a DISTINCT pass over all session rows, whose cost grows
    with the sessions: the user filter probes the index per user, and the date filter is
    fixed ranges instead of a drilldown built from every row's date."""
    long_session(alice, 1)
    long_session(bob, 1)
    assert not [sql for sql in changelist_queries(admin_client) if "DISTINCT" in sql.upper()]
    filters = admin_client.get(reverse(CHANGELIST)).context["cl"].filter_specs
    assert "created at" in [f.title for f in filters]


def test_the_change_form_shows_the_newest_page_of_a_long_transcript(admin_client, alice):
    """Tests that a session with more messages than a page shows only the newest page, in
    order, with a link to the older ones and none to newer ones."""
    session = long_session(alice, 250)
    response = admin_client.get(reverse(CHANGE, args=[session.pk]))
    assert page_contents(response) == [f"m{i}" for i in range(150, 250)]
    page = response.context["transcript"]
    assert page.newer is None
    older = reverse(TRANSCRIPT, args=[session.pk]) + f"?before={page.messages[0].pk}"
    assert older.encode() in response.content.replace(b"&amp;", b"&")
    assert b">m149<" not in response.content


def test_the_transcript_pages_back_by_message_id(admin_client, alice):
    """Tests that ?before=<id> shows the page of messages just older than that id, linking
    newer and older pages, and that the oldest page has no older link."""
    session = long_session(alice, 250)
    url = reverse(TRANSCRIPT, args=[session.pk])
    first = Message.objects.filter(session=session).order_by("id")[150].pk  # "m150"
    response = admin_client.get(url, {"before": first})
    assert response.status_code == 200
    assert page_contents(response) == [f"m{i}" for i in range(50, 150)]
    page = response.context["transcript"]
    assert (page.older, page.newer) == (page.messages[0].pk, page.messages[-1].pk)
    oldest = admin_client.get(url, {"before": page.older})
    assert page_contents(oldest) == [f"m{i}" for i in range(50)]
    assert oldest.context["transcript"].older is None


def test_the_transcript_pages_forward_by_message_id(admin_client, alice):
    """Tests that ?after=<id> shows the page just newer than that id, oldest first, and
    that the newest page has no newer link."""
    session = long_session(alice, 250)
    url = reverse(TRANSCRIPT, args=[session.pk])
    ids = list(Message.objects.filter(session=session).order_by("id").values_list("pk", flat=True))
    response = admin_client.get(url, {"after": ids[49]})
    assert page_contents(response) == [f"m{i}" for i in range(50, 150)]
    assert response.context["transcript"].newer == ids[149]
    newest = admin_client.get(url, {"after": ids[149]})
    assert page_contents(newest) == [f"m{i}" for i in range(150, 250)]
    assert newest.context["transcript"].newer is None


def test_a_transcript_page_reads_one_bounded_page_of_messages(admin_client, alice):
    """Tests that every query a transcript page makes on the messages is bounded by LIMIT
    and none counts them, however long the transcript."""
    session = long_session(alice, 300)
    for url in (reverse(CHANGE, args=[session.pk]), reverse(TRANSCRIPT, args=[session.pk])):
        with CaptureQueriesContext(connection) as queries:
            admin_client.get(url)
        touched = message_queries([q["sql"] for q in queries.captured_queries])
        assert touched and all(" LIMIT " in sql for sql in touched)
        assert not [sql for sql in touched if "COUNT(" in sql.upper()]


def test_a_missing_session_or_a_malformed_cursor_is_refused(admin_client, alice):
    """Tests that the transcript of a session that does not exist answers 404, and a
    malformed cursor 400, instead of an empty page."""
    assert admin_client.get(reverse(TRANSCRIPT, args=["nope"])).status_code == 404
    url = reverse(TRANSCRIPT, args=[long_session(alice, 1).pk])
    assert admin_client.get(url, {"before": "x"}).status_code == 400


def test_the_transcript_page_needs_view_permission(client, alice):
    """Tests that a staff user without view permission on sessions cannot read transcripts."""
    session = long_session(alice, 1)
    staff = type(alice).objects.create_user("staff", is_staff=True)
    client.force_login(staff)
    assert client.get(reverse(TRANSCRIPT, args=[session.pk])).status_code == 403


@pytest.mark.parametrize(
    ("status", "shown"),
    [("live", "below 1042 (reserved ahead while live)"), ("closed", "1042")],
)
def test_change_form_tells_a_reserved_seq_bound_from_a_final_seq(
    admin_client, stored_session, status, shown
):
    """Tests that the change form shows last_seq as a bound while a host holds the session
    (seqs are reserved ahead in the row) and as the exact seq once the session is closed."""
    GatewaySession.objects.filter(pk=stored_session.pk).update(status=status, last_seq=1042)
    url = reverse("admin:gateway_app_gatewaysession_change", args=[stored_session.pk])
    assert shown in admin_client.get(url).content.decode()


def test_sessions_cannot_be_added_and_live_ones_not_deleted(admin_client, stored_session):
    """Tests that sessions are never added in the admin, and a live one cannot be deleted."""
    assert admin_client.get(reverse("admin:gateway_app_gatewaysession_add")).status_code == 403
    url = reverse("admin:gateway_app_gatewaysession_delete", args=[stored_session.pk])
    assert admin_client.get(url).status_code == 403


@pytest.mark.parametrize(
    ("action", "reason"), [("close_sessions", "closed"), ("reap_sessions", "reaped")]
)
def test_actions_go_through_request_teardown(
    admin_client, stored_session, monkeypatch, action, reason
):
    """Tests that Close and Reap now call the one shared teardown request with their reason."""
    calls = []
    monkeypatch.setattr(
        "gateway_app.admin.request_teardown", lambda row, why: calls.append((row.pk, why)) or True
    )
    response = admin_client.post(
        reverse(CHANGELIST),
        {"action": action, "_selected_action": [stored_session.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert calls == [(stored_session.pk, reason)]
    assert any("requested for 1 session" in m for m in messages_of(response))


@pytest.mark.parametrize(
    ("action", "reason"), [("close_sessions", "closed"), ("reap_sessions", "reaped")]
)
async def test_action_tears_down_a_live_session(connect, alice, admin_client, action, reason):
    """Tests that the admin action reaches the live session's host: the attached client gets
    session.closed with the reason and the row is finalized."""
    rpc = await connect(alice)
    sid = (await rpc.call("session.create", {"title": "live one"}))["session_id"]
    host = await get_host()
    await host.store.flush()  # the row (with its host channel) is written behind

    response = await sync_to_async(admin_client.post)(
        reverse(CHANGELIST), {"action": action, "_selected_action": [sid]}
    )
    assert response.status_code == 302
    closed = await rpc.event("session.closed")
    assert closed["session_id"] == sid and closed["payload"] == {"reason": reason}
    assert sid not in host.sessions
    await host.store.flush()
    row = await GatewaySession.objects.aget(pk=sid)
    assert (row.status, row.close_reason) == ("closed", reason)


def test_action_on_a_closed_session_only_warns(admin_client, stored_session):
    """Tests that closing an already closed session changes nothing and says so."""
    GatewaySession.objects.filter(pk=stored_session.pk).update(status="closed")
    response = admin_client.post(
        reverse(CHANGELIST),
        {"action": "close_sessions", "_selected_action": [stored_session.pk]},
        follow=True,
    )
    assert any("already closed" in m for m in messages_of(response))


### Tokens ###


def test_token_add_shows_the_raw_token_exactly_once(admin_client, admin_user):
    """Tests that adding a token mints it, shows the raw token once, and stores only its hash."""
    response = admin_client.post(
        reverse("admin:gateway_app_apitoken_add"),
        {"user": admin_user.pk, "name": "ci"},
        follow=True,
    )
    assert response.status_code == 200
    (shown,) = [m for m in messages_of(response) if m.startswith("New token")]
    raw = next(word for word in shown.split() if word.startswith("hgw_"))
    assert response.content.count(raw.encode()) == 1
    token = ApiToken.objects.get()
    assert token.key_hash == hash_token(raw)
    assert (token.user, token.name, token.prefix) == (admin_user, "ci", raw[:10])
    assert token.key_hash.encode() not in response.content

    for url in (
        reverse("admin:gateway_app_apitoken_changelist"),
        reverse("admin:gateway_app_apitoken_change", args=[token.pk]),
    ):
        page = admin_client.get(url)
        assert page.status_code == 200
        assert raw.encode() not in page.content
        assert token.key_hash.encode() not in page.content
        assert token.prefix.encode() in page.content


def test_token_change_form_edits_only_the_name(admin_client, admin_user, alice):
    """Tests that a token's user, hash and dates cannot be changed in the admin."""
    token, raw = ApiToken.mint(admin_user, "old")
    url = reverse("admin:gateway_app_apitoken_change", args=[token.pk])
    admin_client.post(url, {"user": alice.pk, "name": "new", "key_hash": "0" * 64})
    token.refresh_from_db()
    assert (token.user, token.name, token.key_hash) == (admin_user, "new", hash_token(raw))


def test_revoke_action_sets_revoked_at(admin_client, admin_user):
    """Tests that Revoke marks the selected tokens revoked, and only active ones count."""
    first, _ = ApiToken.mint(admin_user, "a")
    second, _ = ApiToken.mint(admin_user, "b")
    response = admin_client.post(
        reverse("admin:gateway_app_apitoken_changelist"),
        {"action": "revoke_tokens", "_selected_action": [first.pk]},
        follow=True,
    )
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.revoked and not second.revoked
    assert any("Revoked 1 token" in m for m in messages_of(response))
    assert list(ApiToken.objects.active()) == [second]


### The live page ###


def test_admin_index_and_app_index_link_the_live_page(admin_client):
    """Tests that the live page is discoverable from the admin index and the app index."""
    live = reverse("admin:gateway_app_gatewaysession_live").encode()
    assert live in admin_client.get(reverse("admin:index")).content
    app_index = reverse("admin:app_list", kwargs={"app_label": "gateway_app"})
    assert live in admin_client.get(app_index).content


def test_the_app_leaves_the_admin_sites_index_template_alone():
    """Tests that loading gateway_app's admin module, as autodiscovery does in any project,
    does not replace the admin site's index template (the host project's own front page);
    in a fresh interpreter, since hermes_site.urls sets one for the demo in this one."""
    code = (
        "import django; django.setup(); from django.contrib import admin;"
        " import gateway_app.admin; print(admin.site.index_template)"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "hermes_site.test_settings"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "None"


def test_the_app_index_links_the_gateway_pages_from_its_own_template(admin_client):
    """Tests that the app's section of the admin (its app index) shows the gateway's links
    from admin/gateway_app/app_index.html, which Django picks per app, and the changelist
    links the live page, so a host's admin reaches them without a site-wide template."""
    app_index = admin_client.get(reverse("admin:app_list", kwargs={"app_label": "gateway_app"}))
    assert "admin/gateway_app/app_index.html" in [t.name for t in app_index.templates]
    assert b'id="gateway-links-module"' in app_index.content
    live = reverse("admin:gateway_app_gatewaysession_live").encode()
    assert live in admin_client.get(reverse(CHANGELIST)).content


def test_live_page_renders_for_staff_only(admin_client, client, alice):
    """Tests that the live page uses the admin look for staff and sends others to log in."""
    url = reverse("admin:gateway_app_gatewaysession_live")
    response = admin_client.get(url)
    assert response.status_code == 200
    assert b"Live gateway" in response.content
    assert reverse(LIVE_JSON).encode() in response.content
    assert b'id="site-name"' in response.content  # admin/base_site.html
    assert client.get(url).status_code == 302
    client.force_login(alice)
    assert client.get(url)["Location"].startswith(reverse("admin:login"))
