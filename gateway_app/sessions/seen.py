"""
The ids of the messages a host channel served lately, so a captured message pushed again
within the layer's window (past it, the signature check refuses it) runs once.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict

logger = logging.getLogger(__name__)

#: Ids kept at most; beyond it the oldest are forgotten early (and counted).
MAX_SEEN = 100_000


class SeenIds:
    """A bounded, time-windowed set of message ids."""

    def __init__(self, window_s: float, max_ids: int = MAX_SEEN):
        self.window_s = window_s
        self.max_ids = max_ids
        self._seen: OrderedDict[str, float] = OrderedDict()
        #: Ids forgotten before their window ended (the bound was reached).
        self.evicted = 0

    def first(self, message_id: str) -> bool:
        """Record ``message_id``; False if it was seen within the window (a replay)."""
        now = time.monotonic()
        seen = self._seen
        while seen:
            oldest, at = next(iter(seen.items()))
            if now - at <= self.window_s:
                break
            del seen[oldest]
        if message_id in seen:
            return False
        seen[message_id] = now
        if len(seen) > self.max_ids:
            seen.popitem(last=False)
            if not self.evicted:
                logger.warning(
                    "more than %d host messages within %.0fs", self.max_ids, self.window_s
                )
            self.evicted += 1
        return True

    def __len__(self) -> int:
        return len(self._seen)
