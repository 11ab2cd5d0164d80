"""
Cookie sockets live no longer than their login. A socket authenticated by a Django session
cookie stays valid while that session still exists in the configured ``SESSION_ENGINE``,
still names the same user with the session auth hash of the user's current password, and
the user is active: what Django itself checks on every request.

How an end travels: a logout sends ``login.ended`` (a digest of the session key, never the
key) and a password change, deactivation or deletion sends ``login.changed {user_id}`` to
the hosts' group (``tokens.REVOCATIONS_GROUP``); each host closes (4003) its sockets of
that session, or re-checks that user's sessions and tokens, at once. Whatever no message
announced (a queryset ``update()``, another process beside an in-memory layer, an expired
or cleared session) is caught by the re-check of every watched session, every
``TOKEN_RECHECK_S``, in one query for the sessions (database engines) and one for users.
"""

from __future__ import annotations

import hashlib
import logging
import time
from importlib import import_module
from typing import Any

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from ..conf import setting
from ..sessions.cluster import messages
from . import tokens
from .socketwatch import SocketWatch

logger = logging.getLogger(__name__)

#: To hosts (with ``session``, a digest of the key) and to sockets: the login ended.
ENDED_MESSAGE = messages.LOGIN_ENDED
#: To hosts, with ``user_id``: re-check that user's sessions and tokens now.
CHANGED_MESSAGE = messages.LOGIN_CHANGED
#: Session rows read per query by the re-check.
CHUNK = 500


def session_digest(session_key: str) -> str:
    """What names a login session in messages: the key itself is a credential."""
    return hashlib.sha256(session_key.encode()).hexdigest()


class LoginWatch(SocketWatch):
    """
    The open cookie sockets of this worker by the session key that authenticated them, and
    the user each key named; the logins ended recently (by digest), so a socket that
    authenticated just before the end and lists itself after it is refused.
    """

    close_message = ENDED_MESSAGE
    what = "login"

    def __init__(self, clock=time.monotonic) -> None:
        super().__init__()
        self.clock = clock
        self._users: dict[str, int] = {}
        self._digests: dict[str, str] = {}
        self._ended: dict[str, float] = {}

    def track_login(self, user_id: int, session_key: str, channel_name: str) -> bool:
        """List a socket under its login session; False if that login ended meanwhile."""
        digest = session_digest(session_key)
        until = self._ended.get(digest)
        if until is not None and until > self.clock():
            return False
        self._users[session_key] = user_id
        self._digests[digest] = session_key
        self.track(session_key, channel_name)
        return True

    def forgotten(self, key: Any) -> None:
        self._users.pop(key, None)
        self._digests.pop(session_digest(key), None)

    async def ended(self, digest: str) -> int:
        """A logout reached this worker: remember it, then close that session's sockets."""
        now = self.clock()
        self._ended[digest] = now + max(setting("TOKEN_RECHECK_S"), 0.05)
        for stale in [d for d, until in self._ended.items() if until <= now]:
            del self._ended[stale]
        session_key = self._digests.get(digest)
        return 0 if session_key is None else await self.close_sockets(session_key)

    async def check(self, user_id: int | None = None) -> list[str]:
        """Close the sockets of every watched login (of ``user_id`` only, if given) that no
        longer authenticates its user; returns the digests of those sessions."""
        watched = {
            key: uid
            for key, uid in self._users.items()
            if key in self._sockets and (user_id is None or uid == user_id)
        }
        if not watched:
            return []
        stale = await database_sync_to_async(stale_logins)(watched)
        for session_key in stale:
            await self.close_sockets(session_key)
        return sorted(session_digest(key) for key in stale)

    def reset(self) -> None:
        super().reset()
        self._users.clear()
        self._digests.clear()
        self._ended.clear()


#: This worker's watch over the login sessions of its cookie sockets.
watch = LoginWatch()


def stale_logins(logins: dict[str, int]) -> set[str]:
    """The session keys of ``logins`` (key -> user id it authenticated) that no longer
    authenticate that user. Sync: run it in a thread."""
    sessions = _load_sessions(list(logins))
    user_model = get_user_model()
    users = {u.pk: u for u in user_model._default_manager.filter(pk__in=set(logins.values()))}
    return {
        key
        for key, user_id in logins.items()
        if not _authenticates(sessions.get(key) or {}, users.get(user_id))
    }


def _load_sessions(keys: list[str]) -> dict[str, dict[str, Any]]:
    """Session data by key, from the configured engine; missing or expired ones are absent."""
    store_class = import_module(settings.SESSION_ENGINE).SessionStore
    if issubclass(store_class, DatabaseSessionStore):
        # db and cached_db: the table is authoritative, and one query reads many rows.
        model = store_class.get_model_class()
        decoder = store_class()
        found = {}
        for start in range(0, len(keys), CHUNK):
            rows = model.objects.filter(
                session_key__in=keys[start : start + CHUNK], expire_date__gt=timezone.now()
            ).values_list("session_key", "session_data")
            found.update((key, decoder.decode(data)) for key, data in rows)
        return found
    # file, cache and custom engines: one load each (load() gives {} for a missing session).
    return {key: store_class(key).load() for key in keys}


def _authenticates(session: dict[str, Any], user: Any) -> bool:
    """Whether a session's data still logs ``user`` in, as Django checks per request."""
    if user is None or not getattr(user, "is_active", True):
        return False
    if session.get(BACKEND_SESSION_KEY) not in settings.AUTHENTICATION_BACKENDS:
        return False
    if str(session.get(SESSION_KEY)) != user._meta.pk.value_to_string(user):
        return False
    if not hasattr(user, "get_session_auth_hash"):
        return True
    session_hash = session.get(HASH_SESSION_KEY)
    if not session_hash:
        return False
    # Django also accepts a hash made with a SECRET_KEY_FALLBACKS key (and rotates it).
    current = [user.get_session_auth_hash()]
    fallbacks = getattr(user, "get_session_auth_fallback_hash", lambda: ())
    return any(constant_time_compare(session_hash, h) for h in [*current, *fallbacks()])


async def ended_elsewhere(digest: str) -> int:
    """A ``login.ended`` reached this worker's host: close that session's sockets here."""
    return await watch.ended(digest)


async def changed_elsewhere(user_id: int) -> None:
    """A ``login.changed`` reached this worker's host: re-check that user's sessions here,
    and the tokens of this worker's token sockets (a deactivated user's close)."""
    await watch.check(user_id)
    await tokens.watch.check()


def announce(message: messages.LoginEndedMessage | messages.LoginChangedMessage) -> None:
    """
    Send a login message to every worker's host, from sync code (a view, the admin, a
    management command). Never raises: the change is made already, and what the layer
    cannot carry now the re-check finds within ``TOKEN_RECHECK_S``.
    """
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(tokens.REVOCATIONS_GROUP, message)
    except Exception:
        logger.warning(
            "could not announce %s to the workers (their re-check within TOKEN_RECHECK_S"
            " will find it)",
            message["type"],
            exc_info=True,
        )


def announce_logout(session_key: str) -> None:
    announce(messages.login_ended(session_digest(session_key)))


def announce_change(user_id: int) -> None:
    announce(messages.login_changed(user_id))
