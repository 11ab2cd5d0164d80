"""
Pages of ``session.list``: keyset pagination on (last_activity, id), newest first.

A cursor names the last row of the page before, so a page costs one indexed range read of
``limit`` rows however long the user's history is, and sessions created between two pages
(newer than the cursor) cannot shift the later page.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Q

from ..models import GatewaySession, SessionStatus
from ..rpc.errors import InvalidParams

#: Largest page a caller may ask for; also how many rows per user the one-worker index holds.
MAX_LIMIT = 200
DEFAULT_LIMIT = 50
#: Longest title substring accepted (titles are at most 200 characters).
MAX_QUERY = 200

#: Stored statuses a status filter reads: a stored live row may show detached (its host
#: died) and live/running flip on the host faster than the row is written.
STORED_FOR_STATUS: dict[str, tuple[str, ...]] = {
    SessionStatus.LIVE: (SessionStatus.LIVE, SessionStatus.RUNNING),
    SessionStatus.RUNNING: (SessionStatus.LIVE, SessionStatus.RUNNING),
    SessionStatus.DETACHED: (SessionStatus.LIVE, SessionStatus.RUNNING, SessionStatus.DETACHED),
    SessionStatus.CLOSED: (SessionStatus.CLOSED,),
}


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the previous page ended: its last row's activity time and id."""

    last_activity: datetime
    session_id: str

    def encode(self) -> str:
        raw = f"{self.last_activity.isoformat()}|{self.session_id}".encode()
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        """The cursor ``token`` names; ``InvalidParams`` naming ``cursor`` if it is not one."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
            stamp, session_id = raw.split("|")
            when = datetime.fromisoformat(stamp)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise InvalidParams("cursor", "is not a cursor from session.list") from None
        if when.tzinfo is None or not session_id.isalnum() or len(session_id) > 32:
            raise InvalidParams("cursor", "is not a cursor from session.list")
        return cls(when, session_id)

    @classmethod
    def after(cls, row: dict[str, Any]) -> Cursor:
        """The cursor continuing after ``row`` (a ``session.list`` entry)."""
        return cls(datetime.fromisoformat(row["last_activity"]), row["session_id"])


def sort_key(row: dict[str, Any]) -> tuple[datetime, str]:
    """The page order of a ``session.list`` entry (sorted descending)."""
    return datetime.fromisoformat(row["last_activity"]), row["session_id"]


def read_page(
    user_id: int,
    limit: int,
    cursor: Cursor | None = None,
    status: str | None = None,
    query: str = "",
) -> tuple[list[dict[str, Any]], bool]:
    """Up to ``limit`` of the user's rows after ``cursor``, newest activity first, and
    whether more follow. Blocking: call through ``database_sync_to_async``."""
    rows = GatewaySession.objects.filter(user_id=user_id)
    if cursor is not None:
        # The redundant range on last_activity lets the index seek to the cursor instead of
        # walking the newer rows before it.
        rows = rows.filter(last_activity__lte=cursor.last_activity).filter(
            Q(last_activity__lt=cursor.last_activity) | Q(id__lt=cursor.session_id)
        )
    if status:
        rows = rows.filter(status__in=STORED_FOR_STATUS[status])
    if query:
        rows = rows.filter(title__icontains=query)
    fields = (
        "id",
        "title",
        "status",
        "attached",
        "created_at",
        "last_activity",
        "host_channel",
        "message_count",
    )
    page = list(rows.order_by("-last_activity", "-id").values_list(*fields)[: limit + 1])
    more = len(page) > limit
    page = page[:limit]
    return [
        {
            "session_id": sid,
            "title": title,
            "status": stored_status,
            "attached": attached > 0,
            "created_at": created_at.isoformat(),
            "last_activity": last_activity.isoformat(),
            "messages": messages,
            "host_channel": host_channel,
        }
        for (
            sid,
            title,
            stored_status,
            attached,
            created_at,
            last_activity,
            host_channel,
            messages,
        ) in page
    ], more
