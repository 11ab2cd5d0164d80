"""``GET /metrics``: this worker's metrics in the Prometheus text format, for allowed scrapers."""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST

from ..sessions.host import get_host
from .access import may_scrape
from .collector import WorkerCollector, exposition

logger = logging.getLogger(__name__)


@require_safe
async def metrics(request: HttpRequest) -> HttpResponse:
    """The exposition, or 403 for a scraper neither allowed by address nor authenticated as
    one. Rendered on the event loop: it reads the host's state, which lives there."""
    if not await may_scrape(request):
        logger.info("refused /metrics to %s", request.META.get("REMOTE_ADDR") or "unknown client")
        response = HttpResponse("forbidden\n", status=403, content_type="text/plain")
    else:
        host = await get_host()
        response = HttpResponse(exposition(WorkerCollector(host)), content_type=CONTENT_TYPE_LATEST)
    add_never_cache_headers(response)
    return response
