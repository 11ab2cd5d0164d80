"""
Every message a session host's channel serves: its type name, its fields and a constructor.

A host routes each by type to the handler of the same name (``session.reap`` ->
``session_reap``, as Channels consumers do). Each message carries an ``id`` (``call_id``
for calls and replies) so a host can drop a captured copy pushed again. The module imports
nothing of the gateway: the auth package and the hosts both build their messages here.
"""

from __future__ import annotations

import enum
import uuid
from typing import Any, Literal, NotRequired, TypedDict

#: A detached session's delayed reap, sent by its host to itself.
SESSION_REAP = "session.reap"
#: Operator-requested teardown (admin actions), sent to the session's host.
SESSION_TEARDOWN = "session.teardown"
#: A session operation forwarded by another worker's router.
HOST_CALL = "host.call"
#: The answer to a ``host.call``, sent to the caller's host channel.
HOST_REPLY = "host.reply"
#: An API token was revoked (to every host, and to the sockets it opened).
TOKEN_REVOKED = "token.revoked"
#: A login session ended (to every host, and to the sockets it authenticated).
LOGIN_ENDED = "login.ended"
#: A user's password, activity or existence changed: re-check that user's logins.
LOGIN_CHANGED = "login.changed"
#: An operator asked this worker to drain (``gateway_drain``, the admin): a graceful stop.
HOST_DRAIN = "host.drain"

#: Every type a host channel serves.
HOST_MESSAGE_TYPES = (
    SESSION_REAP,
    SESSION_TEARDOWN,
    HOST_CALL,
    HOST_REPLY,
    TOKEN_REVOKED,
    LOGIN_ENDED,
    LOGIN_CHANGED,
    HOST_DRAIN,
)

#: The reasons an operator may tear a session down for.
TeardownReason = Literal["closed", "reaped"]
TEARDOWN_REASONS: tuple[TeardownReason, ...] = ("closed", "reaped")


class Operation(enum.StrEnum):
    """A session operation a host runs for a connection, by the SessionHost method's name."""

    RESUME = "resume"
    SUBMIT = "submit"
    SLASH = "slash"
    CLOSE = "close"
    INTERRUPT = "interrupt"
    RESPOND = "respond"
    DETACH_ID = "detach_id"


#: The host-level calls that concern no session or connection (the admin's live page):
#: the host's figures now, and its ring of samples for the charts.
SNAPSHOT = "snapshot"
SAMPLES = "samples"
HOST_QUERIES = (SNAPSHOT, SAMPLES)


class ReapMessage(TypedDict):
    type: str
    id: str
    session_id: str
    epoch: int


class TeardownMessage(TypedDict):
    type: str
    id: str
    session_id: str
    reason: TeardownReason


class Conn(TypedDict):
    """The remote connection a forwarded call runs for."""

    channel: str
    user_id: int
    username: str
    is_staff: bool
    #: The host channel of the connection's worker.
    worker: str


class CallMessage(TypedDict):
    type: str
    call_id: str
    reply_to: str
    op: str
    session_id: NotRequired[str]
    args: NotRequired[dict[str, Any]]
    conn: NotRequired[Conn]


class ErrorBody(TypedDict):
    code: int
    message: str
    data: NotRequired[dict[str, Any]]


class ReplyMessage(TypedDict):
    type: str
    call_id: str
    result: NotRequired[Any]
    error: NotRequired[ErrorBody]
    #: Another host claimed the session first: the caller sends the call there.
    moved: NotRequired[bool]


class TokenRevokedMessage(TypedDict):
    type: str
    id: NotRequired[str]
    token_id: int


class LoginEndedMessage(TypedDict):
    type: str
    id: NotRequired[str]
    #: A digest of the session key (the key itself is a credential).
    session: str


class DrainMessage(TypedDict):
    type: str
    id: str


class LoginChangedMessage(TypedDict):
    type: str
    id: NotRequired[str]
    user_id: int


def new_id() -> str:
    return uuid.uuid4().hex


def reap(session_id: str, epoch: int) -> ReapMessage:
    return {"type": SESSION_REAP, "id": new_id(), "session_id": session_id, "epoch": epoch}


def teardown(session_id: str, reason: TeardownReason) -> TeardownMessage:
    return {"type": SESSION_TEARDOWN, "id": new_id(), "session_id": session_id, "reason": reason}


def call(
    reply_to: str, op: Operation, session_id: str, args: dict[str, Any], conn: Conn
) -> CallMessage:
    return {
        "type": HOST_CALL,
        "call_id": new_id(),
        "reply_to": reply_to,
        "op": op,
        "session_id": session_id,
        "args": args,
        "conn": conn,
    }


def host_query(reply_to: str, op: str) -> CallMessage:
    """A host-level call (one of ``HOST_QUERIES``): no session, no connection."""
    return {"type": HOST_CALL, "call_id": new_id(), "reply_to": reply_to, "op": op}


def reply(call_id: str) -> ReplyMessage:
    """A reply to fill in with ``result``, ``error`` or ``moved``."""
    return {"type": HOST_REPLY, "call_id": call_id}


def token_revoked(token_id: int) -> TokenRevokedMessage:
    return {"type": TOKEN_REVOKED, "id": new_id(), "token_id": token_id}


def login_ended(digest: str) -> LoginEndedMessage:
    return {"type": LOGIN_ENDED, "id": new_id(), "session": digest}


def login_changed(user_id: int) -> LoginChangedMessage:
    return {"type": LOGIN_CHANGED, "id": new_id(), "user_id": user_id}


def drain() -> DrainMessage:
    return {"type": HOST_DRAIN, "id": new_id()}


def message_id(message: dict[str, Any]) -> str:
    """The id a replay is recognized by ("" for a message without one)."""
    return str(message.get("call_id") or message.get("id") or "")
