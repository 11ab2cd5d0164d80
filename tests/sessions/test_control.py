"""Operator teardown requests (admin actions) routed to the session's host."""

import pytest
from asgiref.sync import sync_to_async

from gateway_app.models import GatewaySession
from gateway_app.sessions.control import request_teardown
from gateway_app.sessions.host import current_host

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
