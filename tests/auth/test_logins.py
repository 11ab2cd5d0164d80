"""Cookie sockets live no longer than their login: logout, a password change and
deactivation close them (4003) through the real auth stack, at once through the hosts'
group and otherwise at the periodic re-check; other logins and other users stay open."""

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from gateway_app.auth import logins
from gateway_app.auth.middleware import GatewayAuthStack
from gateway_app.models import ApiToken
from gateway_app.transport.websocket import GatewayConsumer

pytestmark = pytest.mark.django_db(transaction=True)

ALLOWED_ORIGIN = (b"origin", b"http://localhost:8000")
#: A browser socket is same-origin: the Host its page was served from.
PAGE_HOST = (b"host", b"localhost:8000")
CLOSED_4003 = {"type": "websocket.close", "code": 4003}


@pytest.fixture
def app(fresh_host):
    return GatewayAuthStack(GatewayConsumer.as_asgi())


@pytest.fixture
async def opened():
    communicators = []

    async def open_socket(app, headers):
        communicator = WebsocketCommunicator(app, "/api/ws", headers=list(headers))
        communicators.append(communicator)
        connected, code = await communicator.connect(timeout=5)
        assert connected, code
        ready = await communicator.receive_json_from(timeout=5)
        assert ready["params"]["type"] == "gateway.ready"
        return communicator

    yield open_socket
    for communicator in communicators:
        try:
            await communicator.disconnect(timeout=5)
        except Exception:
            pass


@sync_to_async
def browser(user):
    """A logged-in Django test client (one browser, one login session)."""
    client = Client()
    client.force_login(user)
    return client


def cookie(client):
    value = client.cookies[settings.SESSION_COOKIE_NAME].value
    return [
        PAGE_HOST,
        ALLOWED_ORIGIN,
        (b"cookie", f"{settings.SESSION_COOKIE_NAME}={value}".encode()),
    ]


def bearer(raw):
    return [(b"authorization", b"Bearer " + raw.encode())]


async def ping(communicator):
    await communicator.send_to('{"jsonrpc":"2.0","id":1,"method":"gateway.ping"}')
    return (await communicator.receive_json_from(timeout=5))["result"]


@sync_to_async
def change_password(user):
    user.set_password("a-new-password")
    user.save()


@sync_to_async
def deactivate(user):
    user.is_active = False
    user.save()


async def test_logout_closes_the_sessions_cookie_socket_at_once(app, opened, alice):
    """Tests that Django's logout (user_logged_out) closes the sockets that login session
    opened with 4003 at once, long before the periodic re-check (TOKEN_RECHECK_S, 60 s)."""
    client = await browser(alice)
    socket = await opened(app, cookie(client))
    await sync_to_async(client.logout)()
    assert await socket.receive_output(timeout=5) == CLOSED_4003


async def test_logout_leaves_another_login_of_the_same_user_open(app, opened, alice):
    """Tests that logging out of one browser closes only that login session's socket: the
    same user's socket from another browser keeps working."""
    laptop, phone = await browser(alice), await browser(alice)
    on_laptop = await opened(app, cookie(laptop))
    on_phone = await opened(app, cookie(phone))
    await sync_to_async(laptop.logout)()
    assert await on_laptop.receive_output(timeout=5) == CLOSED_4003
    assert await ping(on_phone) == {"pong": True}


async def test_a_logged_out_cookie_cannot_open_a_socket(app, alice):
    """Tests that the cookie of a session that logged out is refused on connect."""
    client = await browser(alice)
    headers = cookie(client)
    await sync_to_async(client.logout)()
    communicator = WebsocketCommunicator(app, "/api/ws", headers=headers)
    assert await communicator.connect(timeout=5) == (False, 4003)


async def test_password_change_closes_every_cookie_socket_of_the_user(app, opened, alice):
    """Tests that a password change (a new session auth hash) closes the user's cookie
    sockets of every login session at once."""
    laptop, phone = await browser(alice), await browser(alice)
    sockets = [await opened(app, cookie(laptop)), await opened(app, cookie(phone))]
    await change_password(alice)
    for socket in sockets:
        assert await socket.receive_output(timeout=5) == CLOSED_4003


async def test_deactivation_closes_cookie_and_token_sockets(app, opened, alice):
    """Tests that is_active=False closes the user's cookie and API-token sockets at once."""
    _, raw = await sync_to_async(ApiToken.mint)(alice, name="t")
    sockets = [await opened(app, cookie(await browser(alice))), await opened(app, bearer(raw))]
    await deactivate(alice)
    for socket in sockets:
        assert await socket.receive_output(timeout=5) == CLOSED_4003


async def test_another_users_sockets_stay_open(app, opened, alice, bob):
    """Tests that deactivating and logging out one user leaves another user's cookie socket
    (and its login session) untouched."""
    client = await browser(alice)
    victim = await opened(app, cookie(client))
    bystander = await opened(app, cookie(await browser(bob)))
    await change_password(alice)
    await sync_to_async(client.logout)()
    assert await victim.receive_output(timeout=5) == CLOSED_4003
    assert await ping(bystander) == {"pong": True}


async def test_saving_the_user_without_a_login_change_keeps_its_sockets(app, opened, alice):
    """Tests that saving the user without a login change (last_login, a name) keeps its
    cookie socket open."""
    socket = await opened(app, cookie(await browser(alice)))
    alice.first_name = "Alice"
    await sync_to_async(alice.save)()
    assert await logins.watch.check() == []
    assert await ping(socket) == {"pong": True}


@pytest.mark.parametrize(
    "change",
    [{"is_active": False}, {"password": "md5$changed$behind-the-back"}],
    ids=["deactivated", "password"],
)
async def test_a_change_without_a_signal_is_caught_by_the_recheck(
    app, opened, alice, limits, change
):
    """Tests that a change no signal announces (a queryset update, another process without
    the channel layer) still closes the cookie socket at the periodic re-check."""
    limits(TOKEN_RECHECK_S=0.05)
    socket = await opened(app, cookie(await browser(alice)))
    await get_user_model().objects.filter(pk=alice.pk).aupdate(**change)
    assert await socket.receive_output(timeout=5) == CLOSED_4003


async def test_a_session_deleted_behind_the_gateways_back_is_caught_by_the_recheck(
    app, opened, alice, limits
):
    """Tests that a login session removed from the session store without logout (clearsessions,
    an operator) closes its socket at the periodic re-check."""
    limits(TOKEN_RECHECK_S=0.05)
    client = await browser(alice)
    socket = await opened(app, cookie(client))
    await sync_to_async(client.session.delete)()
    assert await socket.receive_output(timeout=5) == CLOSED_4003


async def test_one_recheck_reads_every_login_in_two_queries(alice, bob):
    """Tests that the re-check of many login sessions (database session engine) costs one
    query for the sessions and one for their users, and names only the stale ones."""
    clients = [await browser(user) for user in (alice, alice, bob)]
    keys = [client.session.session_key for client in clients]
    logins_by_key = dict(zip(keys, [alice.pk, alice.pk, bob.pk], strict=True))
    await get_user_model().objects.filter(pk=bob.pk).aupdate(is_active=False)

    def check():
        with CaptureQueriesContext(connection) as queries:
            stale = logins.stale_logins(logins_by_key)
        return stale, len(queries)

    assert await sync_to_async(check)() == ({keys[2]}, 2)
