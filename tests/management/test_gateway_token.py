from io import StringIO

import pytest
from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from gateway_app.auth.middleware import GatewayAuthStack
from gateway_app.models import ApiToken, hash_token


def gateway_token(*args):
    """Run the command; return (stdout lines, stderr text)."""
    stdout, stderr = StringIO(), StringIO()
    call_command("gateway_token", *args, stdout=stdout, stderr=stderr)
    return stdout.getvalue().splitlines(), stderr.getvalue()


@pytest.fixture
def alice(db):
    return get_user_model().objects.create_user("alice")


def test_prints_the_raw_token_as_the_last_stdout_line(alice):
    """Tests that the minted token is alone on the last line of stdout."""
    lines, _ = gateway_token("alice", "--name", "laptop")
    raw = lines[-1]
    assert raw.startswith("hgw_")
    assert raw == raw.strip() and " " not in raw
    token = ApiToken.objects.get(user=alice)
    assert token.name == "laptop"


def test_stores_only_the_hash(alice):
    """Tests that the stored row holds the token's hash and never the raw value."""
    raw = gateway_token("alice")[0][-1]
    token = ApiToken.objects.get(user=alice)
    assert token.key_hash == hash_token(raw)
    assert raw not in {str(value) for value in vars(token).values()}


def test_unknown_user_is_an_error(db):
    """Tests that an unknown username fails clearly and mints nothing."""
    with pytest.raises(CommandError, match="--create-user"):
        gateway_token("nobody")
    assert not ApiToken.objects.exists()


def test_create_user_creates_an_active_passwordless_user(db):
    """Tests that --create-user makes an active user with an unusable password."""
    lines, _ = gateway_token("bob", "--create-user")
    bob = get_user_model().objects.get(username="bob")
    assert bob.is_active
    assert not bob.has_usable_password()
    assert ApiToken.objects.get(user=bob).key_hash == hash_token(lines[-1])


def test_create_user_reuses_an_existing_user(alice):
    """Tests that --create-user mints for an existing user without creating another."""
    gateway_token("alice", "--create-user")
    assert get_user_model().objects.count() == 1
    assert ApiToken.objects.filter(user=alice).count() == 1


def test_revoke_by_prefix(alice):
    """Tests that --revoke with the displayed prefix revokes that token only."""
    gateway_token("alice")
    gateway_token("alice")
    first, second = ApiToken.objects.order_by("pk")
    gateway_token("alice", "--revoke", first.prefix)
    assert list(ApiToken.objects.active()) == [second]


def test_revoke_by_id(alice):
    """Tests that --revoke with a token id revokes it."""
    gateway_token("alice")
    token = ApiToken.objects.get()
    gateway_token("alice", "--revoke", str(token.pk))
    assert not ApiToken.objects.active().exists()


def test_revoke_of_another_users_token_is_an_error(alice):
    """Tests that --revoke only reaches the named user's tokens."""
    get_user_model().objects.create_user("mallory")
    gateway_token("alice")
    token = ApiToken.objects.get()
    with pytest.raises(CommandError, match="No active token"):
        gateway_token("mallory", "--revoke", str(token.pk))
    assert ApiToken.objects.active().exists()


def test_list_shows_tokens(alice):
    """Tests that --list prints one line per token with its prefix and state."""
    gateway_token("alice", "--name", "laptop")
    token = ApiToken.objects.get()
    lines, _ = gateway_token("alice", "--list")
    assert len(lines) == 1
    assert token.prefix in lines[0] and "active" in lines[0] and "laptop" in lines[0]


class AcceptAuthenticated(AsyncWebsocketConsumer):
    async def connect(self):
        if self.scope["user"].is_authenticated:
            await self.accept()
            await self.send(text_data=self.scope["user"].get_username())
        else:
            await self.close(code=4003)


@pytest.mark.django_db(transaction=True)
async def test_minted_token_authenticates_a_websocket():
    """Tests that the printed token opens /api/ws as its user."""
    await sync_to_async(get_user_model().objects.create_user)("alice")
    lines, _ = await sync_to_async(gateway_token)("alice")
    app = GatewayAuthStack(AcceptAuthenticated.as_asgi())
    communicator = WebsocketCommunicator(
        app, "/api/ws", headers=[(b"authorization", f"Bearer {lines[-1]}".encode())]
    )
    connected, _ = await communicator.connect(timeout=3)
    assert connected
    assert await communicator.receive_from(timeout=3) == "alice"
    await communicator.disconnect(timeout=3)
