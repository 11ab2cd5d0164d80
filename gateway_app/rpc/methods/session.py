"""Session lifecycle methods: create, list, resume, history, close, interrupt."""

from __future__ import annotations

from typing import Any

from ...sessions.cluster.messages import Operation
from ...sessions.host import get_host
from ...sessions.listing import DEFAULT_LIMIT, MAX_LIMIT, MAX_QUERY, Cursor
from ...sessions.quota import make_room
from ...sessions.state import SESSION_ID as SESSION_ID_PATTERN
from ...sessions.state import wire_message
from ..context import CallContext
from ..dispatch import method
from ..errors import SessionNotFound
from ..params import get_choice, get_int, get_str
from ..schema import SESSION_ID, array, integer, obj, string

STATUSES = ("live", "running", "detached", "closed")
STATUS = string("the session's state", enum=list(STATUSES))
#: A cursor is a base64 timestamp and session id, well under this.
MAX_CURSOR = 200
TIMESTAMP = string("ISO 8601 date and time", format="date-time")
MESSAGE = obj(
    {
        "id": {
            "type": ["integer", "null"],
            "description": "the message's id: session.history's before pages from it (null "
            "only while it is not stored yet)",
        },
        "role": string(enum=["user", "assistant", "tool"]),
        "content": string(),
        "truncated": {
            "const": True,
            "description": "cut at MAX_MESSAGE_CHARS and marked (absent otherwise)",
        },
    },
    required=("id", "role", "content"),
)
#: session.history pages: the default and the largest.
HISTORY_DEFAULT_LIMIT = 50
HISTORY_MAX_LIMIT = 200
SESSION_ONLY = obj({"session_id": SESSION_ID}, required=("session_id",))


@method(
    "session.create",
    params=obj({"title": string("the session's title", maxLength=200)}),
    result=obj(
        {"session_id": SESSION_ID, "title": string(), "created_at": TIMESTAMP},
        required=("session_id", "title", "created_at"),
    ),
)
async def session_create(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    """Create a session attached to this connection."""
    title = get_str(params, "title", required=False, default="", max_length=200)
    host = await get_host()
    await make_room(ctx, host)  # the user's LRU idle detached session goes, else 4029
    session = await host.create(ctx, title.strip())
    return {"session_id": session.id, "title": session.title, "created_at": session.created_at}


@method(
    "session.list",
    params=obj(
        {
            "limit": integer(
                "rows in the page", minimum=1, maximum=MAX_LIMIT, default=DEFAULT_LIMIT
            ),
            "cursor": string(
                "the next_cursor of the page before", maxLength=MAX_CURSOR, minLength=1
            ),
            "status": STATUS,
            "query": string("a case-insensitive title substring", maxLength=MAX_QUERY),
        }
    ),
    result=obj(
        {
            "sessions": array(
                obj(
                    {
                        "session_id": SESSION_ID,
                        "title": string(),
                        "status": STATUS,
                        "attached": {"type": "boolean"},
                        "created_at": TIMESTAMP,
                        "last_activity": TIMESTAMP,
                        "messages": integer("messages in the transcript", minimum=0),
                    },
                    required=(
                        "session_id",
                        "title",
                        "status",
                        "attached",
                        "created_at",
                        "last_activity",
                        "messages",
                    ),
                ),
                "a page of the caller's own sessions, newest activity first",
            ),
            "next_cursor": {
                "type": ["string", "null"],
                "description": "pass as cursor for the next page; null on the last page",
            },
        },
        required=("sessions", "next_cursor"),
    ),
)
async def session_list(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    """A page of the caller's sessions: stored rows, with the live state of this worker's
    overlaid; the first unfiltered page comes from the host's index."""
    limit = get_int(params, "limit", required=False, minimum=1, maximum=MAX_LIMIT)
    token = get_str(params, "cursor", required=False, default="", max_length=MAX_CURSOR)
    status = get_choice(params, "status", STATUSES) if params.get("status") is not None else ""
    query = get_str(params, "query", required=False, default="", max_length=MAX_QUERY)
    limit = DEFAULT_LIMIT if limit is None else limit
    cursor = Cursor.decode(token) if token else None
    host = await get_host()
    if cursor is None and not status and not query:
        rows, more = await host.index.page(ctx.user_id, limit)
    else:
        rows, more = await host.store.list_page(ctx.user_id, limit, cursor, status, query)
    # The cursor follows the stored rows, before live state may filter some out.
    next_cursor = Cursor.after(rows[-1]).encode() if more and rows else None
    alive: dict[str, bool] = {}
    for row in rows:
        host_channel = row.pop("host_channel")
        live = host.sessions.get(row["session_id"])
        if live is not None:
            row["status"] = live.status
            row["attached"] = bool(live.attached)
            row["title"] = live.title
            row["messages"] = live.message_count
        elif row["status"] != "closed":
            if host_channel not in alive:
                alive[host_channel] = await host.host_alive(host_channel)
            if not alive[host_channel]:
                # Its worker died without finalizing it: resumable from the transcript.
                row["status"], row["attached"] = "detached", False
    if status:
        rows = [row for row in rows if row["status"] == status]
    return {"sessions": rows, "next_cursor": next_cursor}


@method(
    "session.resume",
    params=obj(
        {
            "session_id": SESSION_ID,
            "last_seq": integer("replay the buffered events after this seq", minimum=0),
        },
        required=("session_id",),
    ),
    result=obj(
        {
            "session_id": SESSION_ID,
            "title": string(),
            "status": STATUS,
            "messages": array(MESSAGE, "the newest transcript messages, oldest first"),
            "omitted": integer("older messages left out", minimum=0),
            "replayed": integer("events sent again before this response", minimum=0),
            "gap": {
                "type": "boolean",
                "description": "events after last_seq are no longer buffered",
            },
            "last_seq": integer("the session's latest seq", minimum=0),
            "running_turn": {
                **obj(
                    {
                        "turn_id": string(),
                        "text": string("the turn's text up to seq"),
                        "seq": integer("the replayed events come after this seq", minimum=0),
                    },
                    required=("turn_id", "text", "seq"),
                ),
                "description": "the running turn so far, when its message.start is no "
                "longer buffered and the replay would miss events: its text replaces what "
                "the client has of it",
            },
        },
        required=(
            "session_id",
            "title",
            "status",
            "messages",
            "omitted",
            "replayed",
            "gap",
            "last_seq",
        ),
    ),
)
async def session_resume(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    """Attach to a session (live or stored) and replay the events after ``last_seq``."""
    session_id = get_str(params, "session_id")
    last_seq = get_int(params, "last_seq", required=False, minimum=0)
    host = await get_host()
    return await host.router.call(ctx, Operation.RESUME, session_id, last_seq=last_seq)


@method(
    "session.close",
    params=SESSION_ONLY,
    result=obj({"closed": {"const": True}}, required=("closed",)),
)
async def session_close(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    """Tear the session down: turn cancelled, slash worker ended."""
    session_id = get_str(params, "session_id")
    host = await get_host()
    await host.router.call(ctx, Operation.CLOSE, session_id)
    return {"closed": True}


@method(
    "session.interrupt",
    params=SESSION_ONLY,
    result=obj(
        {"interrupted": {"type": "boolean", "description": "a turn was running"}},
        required=("interrupted",),
    ),
)
async def session_interrupt(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    """Stop the running turn, if any."""
    session_id = get_str(params, "session_id")
    host = await get_host()
    return {"interrupted": await host.router.call(ctx, Operation.INTERRUPT, session_id)}


@method(
    "session.history",
    params=obj(
        {
            "session_id": SESSION_ID,
            "before": integer(
                "the id of the oldest message the client has (a message of session.resume, "
                "or next_before): the page ends just before it; absent: the newest messages",
                minimum=1,
            ),
            "limit": integer(
                "messages in the page",
                minimum=1,
                maximum=HISTORY_MAX_LIMIT,
                default=HISTORY_DEFAULT_LIMIT,
            ),
        },
        required=("session_id",),
    ),
    result=obj(
        {
            "messages": array(MESSAGE, "stored transcript messages, oldest first"),
            "has_more": {"type": "boolean", "description": "older messages exist"},
            "next_before": {
                "type": ["integer", "null"],
                "description": "pass as before for the next (older) page; null on the first",
            },
        },
        required=("messages", "has_more", "next_before"),
    ),
)
async def session_history(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    """
    A page of the caller's session's older transcript messages, read from the database on
    any worker (nothing is forwarded to the session's host, and the session is not started):
    every message older than one a client holds is stored already.
    """
    session_id = get_str(params, "session_id")
    before = get_int(params, "before", required=False, minimum=1)
    limit = get_int(params, "limit", required=False, minimum=1, maximum=HISTORY_MAX_LIMIT)
    limit = HISTORY_DEFAULT_LIMIT if limit is None else limit
    if not SESSION_ID_PATTERN.match(session_id):
        raise SessionNotFound()
    host = await get_host()
    page = await host.store.history(session_id, ctx.user_id, before, limit)
    if page is None:
        raise SessionNotFound()
    messages = [wire_message(m, m["content"]) for m in page.messages]
    next_before = messages[0]["id"] if page.has_more and messages else None
    return {"messages": messages, "has_more": page.has_more, "next_before": next_before}
