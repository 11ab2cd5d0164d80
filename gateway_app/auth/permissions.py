"""
Who may use the gateway at all: with ``REQUIRE_PERMISSION`` on, only holders of the
``gateway_app.use_gateway`` permission (superusers implicitly), checked when a transport
opens, against the database rather than a user object cached by the caller.
"""

from __future__ import annotations

from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model

from ..conf import setting

PERMISSION = "gateway_app.use_gateway"


def may_use_gateway(user_id: int) -> bool:
    """Whether the user may open a connection now (always, unless REQUIRE_PERMISSION)."""
    if not setting("REQUIRE_PERMISSION"):
        return True
    user = get_user_model().objects.filter(pk=user_id).first()
    # has_perm is False for an inactive user, and True for an active superuser.
    return user is not None and user.has_perm(PERMISSION)


async def may_connect(user_id: int) -> bool:
    """``may_use_gateway`` from the event loop, which hops to the database thread only when
    ``REQUIRE_PERMISSION`` makes it read something: a connect costs no hop otherwise."""
    if not setting("REQUIRE_PERMISSION"):
        return True
    return await database_sync_to_async(may_use_gateway)(user_id)
