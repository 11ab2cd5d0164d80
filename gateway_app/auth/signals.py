"""
Django signals that end logins: a logout, and a user whose password changed, who was
deactivated or deleted. Each sends one message to every worker (``logins``) once the change
is committed, so the re-check it triggers reads the new state.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from . import logins

#: The user fields a session depends on: the password (its auth hash) and is_active.
LOGIN_FIELDS = frozenset({"password", "is_active"})


@receiver(user_logged_out, dispatch_uid="gateway_logout")
def _logged_out(sender: Any, request: Any = None, **kwargs: Any) -> None:
    # Sent before Django flushes the session: its key is still the logged-out one.
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if session_key:
        logins.announce_logout(session_key)


@receiver(pre_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="gateway_user_before")
def _remember_login_fields(
    sender: Any, instance: Any, raw: bool = False, using: str = "default", **kwargs: Any
) -> None:
    # Read back from the row: the instance may have been changed more than once since it
    # was loaded. Saves of other fields only (last_login at every login) cost nothing.
    update_fields = kwargs.get("update_fields")
    if (
        raw
        or instance.pk is None
        or (update_fields is not None and not LOGIN_FIELDS & update_fields)
    ):
        return
    instance._gateway_login_fields = (
        sender._default_manager.using(using)
        .filter(pk=instance.pk)
        .values_list("password", "is_active")
        .first()
    )


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="gateway_user_after")
def _user_saved(sender: Any, instance: Any, using: str = "default", **kwargs: Any) -> None:
    before = instance.__dict__.pop("_gateway_login_fields", None)
    if before is None:
        return
    password, was_active = before
    if password != instance.password or (was_active and not instance.is_active):
        user_id = instance.pk
        transaction.on_commit(lambda: logins.announce_change(user_id), using=using)


@receiver(post_delete, sender=settings.AUTH_USER_MODEL, dispatch_uid="gateway_user_deleted")
def _user_deleted(sender: Any, instance: Any, using: str = "default", **kwargs: Any) -> None:
    user_id = instance.pk
    transaction.on_commit(lambda: logins.announce_change(user_id), using=using)
