"""The connect-time token lookup (SQL built once): it reads what the ORM would, and every
connect reads the row again, so a change committed after an earlier resolution is seen."""

import asyncio
import threading
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.utils import timezone

from gateway_app.auth import tokens
from gateway_app.auth.lookup import unrevoked_token
from gateway_app.models import ApiToken, hash_token

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def token(alice):
    row, raw = ApiToken.mint(alice, name="t")
    ApiToken.objects.filter(pk=row.pk).update(last_used_at=timezone.now() - timedelta(days=1))
    return row, raw


def field_values(obj) -> dict:
    return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}


def test_the_lookup_builds_the_token_and_user_the_orm_builds(token):
    """Tests that the token and its user carry the values, and Python types (aware
    datetimes, bools), that the ORM's ``select_related`` query gives them."""
    row, raw = token
    get_user_model().objects.filter(pk=row.user_id).update(last_login=timezone.now())
    expected = ApiToken.objects.select_related("user").get(pk=row.pk)
    found = unrevoked_token(hash_token(raw))
    assert field_values(found) == field_values(expected)
    assert field_values(found.user) == field_values(expected.user)
    assert all(timezone.is_aware(v) for v in (found.created_at, found.last_used_at))
    assert type(found.user.is_active) is bool and found.user.pk == row.user_id


def test_the_lookup_finds_no_unknown_or_revoked_token(token):
    """Tests that an unknown hash and a revoked token give ``None``."""
    row, raw = token
    assert unrevoked_token(hash_token(raw + "x")) is None
    ApiToken.objects.filter(pk=row.pk).update(revoked_at=timezone.now())
    assert unrevoked_token(hash_token(raw)) is None


async def test_a_revocation_committed_after_a_resolution_refuses_the_next_one(token):
    """Tests that a token revoked by a plain ``update`` (no signal, no message to this
    worker) after it resolved here no longer resolves."""
    row, raw = token
    assert (await tokens.resolve_token(raw)).pk == row.pk
    await ApiToken.objects.filter(pk=row.pk).aupdate(revoked_at=timezone.now())
    assert await tokens.resolve_token(raw) is None


async def test_a_deactivation_committed_after_a_resolution_refuses_the_next_one(token):
    """Tests that a token whose user was deactivated by a plain ``update`` after it
    resolved here no longer resolves."""
    row, raw = token
    assert await tokens.resolve_token(raw) is not None
    await get_user_model().objects.filter(pk=row.user_id).aupdate(is_active=False)
    assert await tokens.resolve_token(raw) is None


async def test_a_deleted_token_no_longer_resolves(token):
    """Tests that a token deleted after it resolved here no longer resolves."""
    row, raw = token
    assert await tokens.resolve_token(raw) is not None
    await ApiToken.objects.filter(pk=row.pk).adelete()
    assert await tokens.resolve_token(raw) is None


async def test_each_resolution_gets_new_objects_with_the_current_user_row(token):
    """Tests that connects share no token or user object (a permission cache on one must
    not serve another) and that a user change committed in between is seen."""
    row, raw = token
    first = await tokens.resolve_token(raw)
    await get_user_model().objects.filter(pk=row.user_id).aupdate(is_staff=True)
    second = await tokens.resolve_token(raw)
    assert second is not first and second.user is not first.user
    assert (first.user.is_staff, second.user.is_staff) == (False, True)


async def test_a_connect_after_a_lookup_started_does_not_share_it(token, monkeypatch):
    """Tests that a connect arriving once a lookup has read the row gets a read of its own:
    a revocation committed in between refuses it, though the earlier lookup is still on
    its way back."""
    row, raw = token
    read, release = threading.Event(), threading.Event()
    real = tokens.unrevoked_token

    def held_after_the_first_read(key_hash):
        found = real(key_hash)
        if not read.is_set():
            read.set()
            release.wait(5)
        return found

    monkeypatch.setattr(tokens, "unrevoked_token", held_after_the_first_read)
    first = asyncio.create_task(tokens.resolve_token(raw))
    await asyncio.to_thread(read.wait, 5)
    revoke = ApiToken.objects.filter(pk=row.pk).update
    await sync_to_async(revoke, thread_sensitive=False)(revoked_at=timezone.now())
    second = asyncio.create_task(tokens.resolve_token(raw))
    await asyncio.sleep(0)  # the second connect asks while the first is held
    release.set()
    assert (await first) is not None
    assert (await second) is None
