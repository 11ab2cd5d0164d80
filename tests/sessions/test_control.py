"""Operator teardown requests (admin actions) routed to the session's host."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from gateway_app.models import GatewaySession
from gateway_app.sessions.cluster import messages
from gateway_app.sessions.cluster import registry as registry_module
from gateway_app.sessions.cluster.registry import SyncRegistry
from gateway_app.sessions.control import request_drain, request_teardown
from gateway_app.sessions.host import current_host, get_host
from tests.sessions.cluster.fakes import FakeRegistry

pytestmark = pytest.mark.django_db(transaction=True)


async def test_teardown_of_a_live_session_runs_on_its_host(connect, alice):
    """Tests that a requested teardown reaches the host, which emits session.closed."""
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    await current_host().store.flush()
    row = await GatewaySession.objects.aget(pk=sid)
    assert await sync_to_async(request_teardown)(row, "reaped")
    event = await rpc.event("session.closed")
    assert event["payload"] == {"reason": "reaped"}
    assert sid not in current_host().sessions


async def test_teardown_of_a_dead_workers_session_finalizes_the_row(alice, fresh_host):
    """Tests that a session whose host is gone is finalized directly in the database."""
    row = await GatewaySession.objects.acreate(
        user=alice, status="detached", host_channel="specific.gone!x"
    )
    assert await sync_to_async(request_teardown)(row, "closed")
    await row.arefresh_from_db()
    assert (row.status, row.close_reason) == ("closed", "closed")


async def test_teardown_of_a_closed_session_is_skipped(alice, fresh_host):
    """Tests that requesting teardown of an already closed session reports False."""
    row = await GatewaySession.objects.acreate(user=alice, status="closed")
    assert not await sync_to_async(request_teardown)(row, "closed")


async def test_a_dead_workers_session_is_finalized_as_its_host_would(alice, fresh_host):
    """Tests that the row of a session no live host holds, closed by an operator, ends as a
    host's teardown leaves a row: closed_at set, no slash worker, seq moved past the dead
    host's."""
    row = await GatewaySession.objects.acreate(
        user=alice, status="live", host_channel="specific.gone!x", last_seq=7, slash_pid=123
    )
    assert await sync_to_async(request_teardown)(row, "reaped")
    await row.arefresh_from_db()
    assert (row.status, row.close_reason, row.attached) == ("closed", "reaped", 0)
    assert row.closed_at is not None and row.slash_pid is None and row.last_seq == 8


async def test_with_no_host_here_the_registry_says_whether_the_sessions_host_lives(
    alice, fresh_host, monkeypatch
):
    """Tests that with no host in this process (the admin), the teardown asks the registry
    built from the settings, and sends it to the live host the registry names."""
    layer = get_channel_layer()
    other_host = await layer.new_channel()
    fake = FakeRegistry()
    fake.live_hosts.add(other_host)
    monkeypatch.setattr(registry_module, "build_registry", lambda url: fake)
    row = await GatewaySession.objects.acreate(user=alice, status="live", host_channel=other_host)
    assert await sync_to_async(request_teardown)(row, "closed")
    message = await asyncio.wait_for(layer.receive(other_host), 5)
    assert (message["type"], message["session_id"]) == (messages.SESSION_TEARDOWN, row.pk)


def test_without_redis_no_other_process_host_counts_as_alive():
    """Tests that the sync registry, built without REDIS_URL, finds no host alive: none in
    another process is reachable."""
    assert SyncRegistry("").alive("specific.elsewhere!x") is False


async def test_gateway_drain_names_a_worker_and_its_host_drains(fresh_host, monkeypatch):
    """Tests that request_drain for this worker's name sends host.drain to its host channel,
    which requests the worker's drain, and that an unknown name reaches nobody."""
    host = await get_host()
    requested = asyncio.Event()
    host.host_channel.drain = requested.set
    assert await sync_to_async(request_drain)(host.worker_name) == [host.channel_name]
    await asyncio.wait_for(requested.wait(), 5)
    assert await sync_to_async(request_drain)("no-such-worker") == []
