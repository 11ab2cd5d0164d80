"""Credentials through the real stack: the gateway consumer behind ``GatewayAuthStack``
refuses missing credentials and foreign origins, and revoking a token closes its open
sockets with 4003 (other connections of the user stay)."""

import asyncio
import io

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from gateway_app.auth import tokens
from gateway_app.auth.middleware import GatewayAuthStack
from gateway_app.auth.tokens import revoke_token, revoke_token_sync
from gateway_app.models import ApiToken
from gateway_app.sessions.host import get_host
from gateway_app.transport.websocket import GatewayConsumer

pytestmark = pytest.mark.django_db(transaction=True)

ALLOWED_ORIGIN = b"http://localhost:8000"


@pytest.fixture
def app(fresh_host):
    return GatewayAuthStack(GatewayConsumer.as_asgi())


@pytest.fixture
def token(alice):
    return ApiToken.mint(alice, name="t")


def bearer(raw):
    return (b"authorization", b"Bearer " + raw.encode())


@pytest.fixture
async def opened():
    communicators = []

    async def open_socket(app, headers):
        communicator = WebsocketCommunicator(app, "/api/ws", headers=list(headers))
        communicators.append(communicator)
        connected, code = await communicator.connect(timeout=5)
        if connected:
            ready = await communicator.receive_json_from(timeout=5)
            assert ready["params"]["type"] == "gateway.ready"
        return communicator, connected, code

    yield open_socket
    for communicator in communicators:
        try:
            await communicator.disconnect(timeout=5)
        except Exception:
            pass


async def ping(communicator):
    await communicator.send_to('{"jsonrpc":"2.0","id":1,"method":"gateway.ping"}')
    return await communicator.receive_json_from(timeout=5)


@sync_to_async
def session_cookie(user):
    client = Client()
    client.force_login(user)
    value = client.cookies[settings.SESSION_COOKIE_NAME].value
    return (b"cookie", f"{settings.SESSION_COOKIE_NAME}={value}".encode())


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [(b"origin", ALLOWED_ORIGIN)],
        [bearer("hgw_never-minted")],
    ],
    ids=["nothing", "origin-only", "unknown-token"],
)
async def test_gateway_refuses_missing_or_bad_credentials_before_accept(
    app, opened, alice, headers
):
    """Tests that the gateway consumer behind the auth stack refuses (4003, pre-accept)."""
    _, connected, code = await opened(app, headers)
    assert (connected, code) == (False, 4003)


async def test_gateway_refuses_a_foreign_origin_even_with_a_valid_token(app, opened, token):
    """Tests that a cross-site Origin is refused before authentication."""
    _, raw = token
    _, connected, _ = await opened(app, [(b"origin", b"https://evil.example"), bearer(raw)])
    assert not connected


async def test_revoking_a_token_closes_its_open_sockets_with_4003(app, opened, alice, token):
    """Tests that revoke_token marks the row revoked and closes every socket the token
    opened with 4003, while the user's cookie and other-token sockets stay open."""
    row, raw = token
    _, other_raw = await sync_to_async(ApiToken.mint)(alice, name="other")
    first, _, _ = await opened(app, [bearer(raw)])
    second, _, _ = await opened(app, [bearer(raw)])
    other, _, _ = await opened(app, [bearer(other_raw)])
    browser_headers = [(b"host", b"localhost:8000"), (b"origin", ALLOWED_ORIGIN)]
    browser, _, _ = await opened(app, [*browser_headers, await session_cookie(alice)])
    assert await revoke_token(row) is True
    for communicator in (first, second):
        assert await communicator.receive_output(timeout=5) == {
            "type": "websocket.close",
            "code": 4003,
        }
    assert (await ApiToken.objects.aget(pk=row.pk)).revoked
    for communicator in (other, browser):
        assert (await ping(communicator))["result"] == {"pong": True}
    _, connected, code = await opened(app, [bearer(raw)])
    assert (connected, code) == (False, 4003)


async def test_revoke_token_sync_works_from_sync_code(app, opened, token):
    """Tests that the sync wrapper the admin and management commands call revokes too."""
    row, raw = token
    socket, _, _ = await opened(app, [bearer(raw)])
    assert await sync_to_async(revoke_token_sync)(row.pk) is True
    assert (await socket.receive_output(timeout=5))["code"] == 4003
    assert await sync_to_async(revoke_token_sync)(row.pk) is False  # already revoked


async def test_token_revoked_between_auth_and_connect_is_refused(fresh_host, alice, token):
    """Tests that a socket authenticated just before its token was revoked, whose consumer
    connects after the revocation reached its worker, is refused: the consumer checks the
    revocations its worker heard of before listing itself under the token."""
    row, _ = token
    communicator = WebsocketCommunicator(GatewayConsumer.as_asgi(), "/api/ws")
    communicator.scope.update(user=alice, auth_method="token", api_token_id=row.pk)
    await revoke_token(row)  # after authentication, before the consumer joins its group
    assert await communicator.connect(timeout=5) == (False, 4003)


async def test_revocation_from_another_worker_closes_sockets(app, opened, token):
    """Tests that the revocation message to the hosts' group closes that worker's sockets of
    the token and remembers the revocation, so a worker that did not revoke it stops
    accepting it at once."""
    row, raw = token
    socket, _, _ = await opened(app, [bearer(raw)])
    await ApiToken.objects.filter(pk=row.pk).aupdate(revoked_at=timezone.now())
    # What another worker's revoke_token sends to this worker's host:
    await get_channel_layer().group_send(
        tokens.REVOCATIONS_GROUP, {"type": tokens.REVOKED_MESSAGE, "token_id": row.pk}
    )
    assert await socket.receive_output(timeout=5) == {"type": "websocket.close", "code": 4003}
    assert tokens.recent.is_revoked(row.pk)
    _, connected, code = await opened(app, [bearer(raw)])
    assert (connected, code) == (False, 4003)


async def test_a_token_socket_joins_no_channel_layer_group(app, opened, token):
    """Tests that connecting with a token costs the channel layer no group membership (the
    worker keeps its sockets by token itself), and that a closed socket is forgotten."""
    _, raw = token
    socket, _, _ = await opened(app, [bearer(raw)])
    # The only group is the one the session host itself listens to.
    groups = {name: set(members) for name, members in get_channel_layer().groups.items()}
    assert groups == {tokens.REVOCATIONS_GROUP: {(await get_host()).channel_name}}
    await socket.disconnect(timeout=5)
    assert not tokens.watch._sockets


async def test_a_revocation_committed_before_a_connect_refuses_it(app, opened, token):
    """Tests that a token revoked where no ``token.revoked`` reaches this worker (another
    process, the in-memory layer) is refused by the next connect, not served from an
    earlier resolution until the re-check."""
    row, raw = token
    _, connected, _ = await opened(app, [bearer(raw)])
    assert connected
    await ApiToken.objects.filter(pk=row.pk).aupdate(revoked_at=timezone.now())
    _, connected, code = await opened(app, [bearer(raw)])
    assert (connected, code) == (False, 4003)


async def test_revocation_the_layer_cannot_deliver_is_caught_by_the_recheck(
    app, opened, token, limits
):
    """Tests that a token revoked where no ``token.revoked`` reaches this worker (e.g. the
    CLI with the in-memory layer) still closes its sockets at the periodic re-check."""
    limits(TOKEN_RECHECK_S=0.05)
    row, raw = token
    socket, _, _ = await opened(app, [bearer(raw)])
    await ApiToken.objects.filter(pk=row.pk).aupdate(revoked_at=timezone.now())
    message = await socket.receive_output(timeout=5)
    assert message == {"type": "websocket.close", "code": 4003}
    await asyncio.sleep(0)


async def test_admin_revoke_action_closes_the_tokens_open_sockets(app, opened, token, admin_client):
    """Tests that the admin's "Revoke selected tokens" goes through revoke_token: the open
    socket of the token is closed with 4003, not left running until it reconnects."""
    row, raw = token
    socket, _, _ = await opened(app, [bearer(raw)])
    response = await sync_to_async(admin_client.post)(
        "/admin/gateway_app/apitoken/",
        {"action": "revoke_tokens", "_selected_action": [row.pk]},
    )
    assert response.status_code == 302
    assert await socket.receive_output(timeout=5) == {"type": "websocket.close", "code": 4003}


async def test_gateway_token_revoke_command_closes_the_tokens_open_sockets(app, opened, token):
    """Tests that ``manage.py gateway_token <user> --revoke <id>`` closes open sockets too."""
    row, raw = token
    socket, _, _ = await opened(app, [bearer(raw)])
    await sync_to_async(call_command)(
        "gateway_token", "alice", "--revoke", str(row.pk), stdout=io.StringIO()
    )
    assert await socket.receive_output(timeout=5) == {"type": "websocket.close", "code": 4003}


async def test_one_recheck_covers_every_watched_token_of_the_worker(
    app, opened, alice, token, monkeypatch
):
    """Tests that the periodic re-check asks the database once for all the tokens this
    worker's sockets use, and names only the revoked ones."""
    row, raw = token
    other_row, other_raw = await sync_to_async(ApiToken.mint)(alice, name="other")
    await opened(app, [bearer(raw)])
    await opened(app, [bearer(other_raw)])
    await ApiToken.objects.filter(pk=row.pk).aupdate(revoked_at=timezone.now())
    queries = []
    real = tokens._still_active

    def counting(token_ids):
        queries.append(sorted(token_ids))
        return real(token_ids)

    monkeypatch.setattr(tokens, "_still_active", counting)
    assert await tokens.watch.check() == [row.pk]
    assert queries == [sorted([row.pk, other_row.pk])]
