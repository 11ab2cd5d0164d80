"""
Keyset pages of one session's transcript for the admin: a page reads at most ``limit`` + 1
rows on the (session, id) index and never counts the transcript, however long it is.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..models import Message


@dataclass(frozen=True, slots=True)
class TranscriptPage:
    """Messages oldest first, and the ids to page from (``None`` where nothing is left)."""

    messages: list[Message]
    #: Pass as ``before`` for the page just older than this one.
    older: int | None
    #: Pass as ``after`` for the page just newer than this one.
    newer: int | None


def transcript_page(
    session_id: str, *, before: int | None = None, after: int | None = None, limit: int = 100
) -> TranscriptPage:
    """The page of ``session_id``'s messages just older than ``before``, just newer than
    ``after``, or (neither given) the newest page."""
    rows = Message.objects.filter(session_id=session_id)
    if after is not None:
        page = list(rows.filter(id__gt=after).order_by("id")[: limit + 1])
        has_newer, page = len(page) > limit, page[:limit]
        has_older = bool(page) and rows.filter(id__lte=after).exists()
    else:
        newest_first = rows if before is None else rows.filter(id__lt=before)
        page = list(newest_first.order_by("-id")[: limit + 1])
        has_older, page = len(page) > limit, page[:limit][::-1]
        has_newer = before is not None and bool(page) and rows.filter(id__gte=before).exists()
    return TranscriptPage(
        messages=page,
        older=page[0].pk if has_older else None,
        newer=page[-1].pk if has_newer else None,
    )
