"""
HTTP views: the chat page (a client of the gateway's WebSocket route) and its logout, the
health check, and the data behind the admin's live gateway page.

The async views run on the server's event loop under daphne, the loop that also runs this
worker's session host, so they read the host's real state directly.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.apps import apps
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LogoutView
from django.db import connection
from django.db.models import Count, Sum
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render, resolve_url
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_safe

from ..models import ApiToken, GatewaySession
from ..sessions.drain import worker_drain
from ..sessions.host import get_host
from ..slash.client import live_worker_pids
from ..transport.ws_urls import websocket_url

logger = logging.getLogger(__name__)

#: Seconds each health probe (channel layer round trip, database query) may take.
HEALTH_TIMEOUT_S = 3.0

AsyncView = Callable[..., Awaitable[HttpResponse]]


### Chat page ###


def _admin_url(name: str) -> str | None:
    """An admin page's URL, or None in a project that does not install or route the admin."""
    if not apps.is_installed("django.contrib.admin"):
        return None
    try:
        return reverse(name)
    except NoReverseMatch:
        return None


@login_required
def chat(request: HttpRequest) -> HttpResponse:
    """The browser client: session list, streaming prompts, approvals, slash commands. Anonymous
    visitors go to ``settings.LOGIN_URL``; staff get links to the admin when it is there."""
    staff = request.user.is_staff
    context = {
        "ws_path": websocket_url(),
        "admin_url": _admin_url("admin:index") if staff else None,
        "live_url": _admin_url("admin:gateway_app_gatewaysession_live") if staff else None,
    }
    return render(request, "gateway_app/chat.html", context)


class ChatLogoutView(LogoutView):
    """The chat page's logout (POST), which needs no admin: back to the chat page, which asks
    for a login, unless the project sets ``LOGOUT_REDIRECT_URL``."""

    def get_default_redirect_url(self) -> str:
        return resolve_url(settings.LOGOUT_REDIRECT_URL or "gateway_app:chat")


### Health ###


async def _check_layer() -> dict[str, Any]:
    layer = get_channel_layer()
    if layer is None:
        return {"ok": False, "error": "no channel layer configured"}
    nonce = uuid.uuid4().hex
    started = time.perf_counter()
    async with asyncio.timeout(HEALTH_TIMEOUT_S):
        # Default prefix: channels-redis serves all "specific." channels with one receive.
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "healthz.ping", "nonce": nonce})
        message = await layer.receive(channel)
    if message.get("nonce") != nonce:
        return {"ok": False, "error": "round trip returned a different message"}
    return {
        "ok": True,
        "backend": type(layer).__name__,
        "ms": round((time.perf_counter() - started) * 1000, 2),
    }


def _db_ping() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


async def _check_database() -> dict[str, Any]:
    started = time.perf_counter()
    async with asyncio.timeout(HEALTH_TIMEOUT_S):
        await sync_to_async(_db_ping)()
    return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 2)}


async def _probe(check: Callable[[], Awaitable[dict[str, Any]]], name: str) -> dict[str, Any]:
    try:
        return await check()
    except TimeoutError:
        logger.warning("healthz: %s timed out after %ss", name, HEALTH_TIMEOUT_S)
        return {"ok": False, "error": f"timed out after {HEALTH_TIMEOUT_S:g}s"}
    except Exception as exc:
        logger.warning("healthz: %s failed: %r", name, exc)
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


@require_safe
async def healthz(request: HttpRequest) -> JsonResponse:
    """200 when a channel-layer round trip and a trivial query both succeed, else 503;
    503 "draining" at once while this worker drains (balancers stop sending to it)."""
    if worker_drain.draining:
        response = JsonResponse({"status": "draining"}, status=503)
        add_never_cache_headers(response)
        return response
    layer, database = await asyncio.gather(
        _probe(_check_layer, "channel layer"), _probe(_check_database, "database")
    )
    ok = layer["ok"] and database["ok"]
    response = JsonResponse(
        {
            "status": "ok" if ok else "fail",
            "worker": (await get_host()).worker_name,
            "channel_layer": layer,
            "database": database,
        },
        status=200 if ok else 503,
    )
    add_never_cache_headers(response)
    return response


### Live gateway data (admin) ###


def staff_required_json(view: AsyncView) -> AsyncView:
    """For async JSON views: 403 unless an active staff user is logged in; never cached."""

    @wraps(view)
    async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = await request.auser()
        if not (user.is_active and user.is_staff):
            response: HttpResponse = JsonResponse({"error": "staff only"}, status=403)
        else:
            response = await view(request, *args, **kwargs)
        add_never_cache_headers(response)
        return response

    return wrapper


def _db_numbers() -> dict[str, Any]:
    sessions = GatewaySession.objects.all()
    by_status = dict(sessions.values_list("status").annotate(n=Count("pk")).order_by())
    by_worker = {
        row["host_worker"] or "-": {"sessions": row["n"], "attached": row["attached"] or 0}
        for row in sessions.exclude(status="closed")
        .values("host_worker")
        .annotate(n=Count("pk"), attached=Sum("attached"))
        .order_by("host_worker")
    }
    return {
        "sessions_by_status": by_status,
        "open_sessions_by_worker": by_worker,
        "attached_connections": sum(w["attached"] for w in by_worker.values()),
        "active_tokens": ApiToken.objects.active().count(),
    }


async def live_state() -> dict[str, Any]:
    """What the live page shows: this worker's host state, plus database totals."""
    host = await get_host()
    snapshot = host.snapshot()
    now = time.time()
    for reap in snapshot["pending_reaps"]:
        due = reap.get("due_at")
        reap["due_in_s"] = None if due is None else round(max(0.0, due - now), 1)
    pids = sorted(live_worker_pids())
    others = await host.router.snapshots()
    db = await sync_to_async(_db_numbers)()
    # Rows whose worker answers neither here nor in the registry were left by one that
    # stopped or died: say so rather than show them as open.
    running = {host.worker_name, *(worker.get("worker") for worker in others)}
    for name, numbers in db["open_sessions_by_worker"].items():
        numbers["running"] = name in running
    return {
        "time": timezone.now().isoformat(),
        "host": snapshot,
        "slash_worker_pids": pids,
        "other_workers": others,
        "db": db,
    }


@staff_required_json
async def live_json(request: HttpRequest) -> JsonResponse:
    """The live page's data, polled every second or two."""
    return JsonResponse(await live_state())


@staff_required_json
async def live_samples_json(request: HttpRequest) -> JsonResponse:
    """The charts' data: this worker's ring of samples, then every other worker's by name."""
    host = await get_host()
    others = sorted(await host.router.samples(), key=lambda ring: str(ring.get("worker")))
    return JsonResponse({"workers": [host.samples.export(), *others]})
