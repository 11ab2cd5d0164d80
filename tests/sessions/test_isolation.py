"""Users are isolated: every session method refuses another user's session exactly like an
unknown one (4001), and no event of one user's session reaches another user."""

from unittest.mock import AsyncMock

import pytest

from gateway_app.sessions.cluster.registry import HostEntry
from gateway_app.sessions.host import current_host

pytestmark = pytest.mark.django_db(transaction=True)

UNKNOWN = "f" * 32


async def alice_sessions(rpc):
    """Alice's state: a turn waiting on approval, one waiting on clarify, a closed session."""
    approving = (await rpc.call("session.create", {"title": "approving"}))["session_id"]
    await rpc.call("prompt.submit", {"session_id": approving, "text": "!tool rm -rf /"})
    approval = (await rpc.event("approval.request"))["payload"]["request_id"]
    clarifying = (await rpc.call("session.create", {"title": "clarifying"}))["session_id"]
    await rpc.call("prompt.submit", {"session_id": clarifying, "text": "!clarify Which?"})
    clarify = (await rpc.event("clarify.request"))["payload"]["request_id"]
    closed = (await rpc.call("session.create", {"title": "closed"}))["session_id"]
    await rpc.call("session.close", {"session_id": closed})
    return {
        "approving": approving,
        "approval": approval,
        "clarifying": clarifying,
        "clarify": clarify,
        "closed": closed,
    }


#: (method, params) for every session method; ``{x}`` names a value of ``alice_sessions``.
MATRIX = [
    ("session.resume", {"session_id": "{approving}"}),
    ("session.resume", {"session_id": "{approving}", "last_seq": 0}),
    ("session.resume", {"session_id": "{closed}"}),
    ("session.close", {"session_id": "{approving}"}),
    ("session.close", {"session_id": "{closed}"}),
    ("session.interrupt", {"session_id": "{approving}"}),
    ("prompt.submit", {"session_id": "{approving}", "text": "hi"}),  # busy for alice
    ("prompt.submit", {"session_id": "{closed}", "text": "hi"}),
    ("slash.exec", {"session_id": "{approving}", "command": "/status"}),
    ("slash.exec", {"session_id": "{closed}", "command": "/history"}),
    (
        "approval.respond",
        {"session_id": "{approving}", "request_id": "{approval}", "choice": "once"},
    ),
    ("clarify.respond", {"session_id": "{clarifying}", "request_id": "{clarify}", "answer": "x"}),
]


def fill(params, values, *, unknown=False):
    out = {}
    for key, value in params.items():
        if isinstance(value, str) and value.startswith("{"):
            value = values[value[1:-1]]
            if unknown and key == "session_id":
                value = UNKNOWN
        out[key] = value
    return out


@pytest.mark.parametrize(
    ("method", "params"), MATRIX, ids=[f"{m}-{i}" for i, (m, _) in enumerate(MATRIX)]
)
async def test_foreign_session_is_refused_exactly_like_an_unknown_one(
    connect, alice, bob, method, params
):
    """Tests that each session method answers bob 4001 for alice's session, identical to an
    unknown id, and leaves alice's session untouched."""
    a, b = await connect(alice), await connect(bob)
    values = await alice_sessions(a)
    foreign = await b.error(method, fill(params, values))
    unknown = await b.error(method, fill(params, values, unknown=True))
    assert foreign == unknown
    assert foreign["code"] == 4001
    host = current_host()
    approving = host.sessions[values["approving"]]
    assert approving.turn is not None and approving.slash is None
    assert host.sessions[values["clarifying"]].pending
    assert values["closed"] not in host.sessions
    assert b.connection.communicator.scope["user"] == bob
    # Alice's pending questions are still hers to answer.
    await a.call(
        "approval.respond",
        {"session_id": values["approving"], "request_id": values["approval"], "choice": "deny"},
    )
    assert (await a.event("tool.complete"))["payload"]["result"] == "denied: rm -rf /"


async def test_session_list_shows_nothing_of_another_user(connect, alice, bob):
    """Tests that session.list never includes another user's live, running or closed
    sessions."""
    a, b = await connect(alice), await connect(bob)
    await alice_sessions(a)
    mine = (await b.call("session.create", {"title": "bob's"}))["session_id"]
    listed = (await b.call("session.list"))["sessions"]
    assert [s["session_id"] for s in listed] == [mine]
    assert {s["title"] for s in listed} == {"bob's"}


async def test_no_event_of_another_users_session_is_delivered(connect, alice, bob):
    """Tests that bob, after probing alice's sessions with every method, receives none of
    their events while alice's turns stream, ask and complete."""
    a, b = await connect(alice), await connect(bob)
    values = await alice_sessions(a)
    for method, params in MATRIX:
        await b.error(method, fill(params, values))
    await a.call(
        "approval.respond",
        {"session_id": values["approving"], "request_id": values["approval"], "choice": "once"},
    )
    await a.call(
        "clarify.respond",
        {"session_id": values["clarifying"], "request_id": values["clarify"], "answer": "blue"},
    )
    await a.event("message.complete", text="ran: rm -rf /")
    await a.event("message.complete", text="blue")
    complete = await a.turn(values["approving"], "more words for alice only")
    assert complete["text"] == "more words for alice only"
    await a.call("session.close", {"session_id": values["clarifying"]})
    await a.event("session.closed")
    # A round trip on bob's socket flushes anything that was queued for it.
    await b.call("gateway.ping")
    alice_ids = {values["approving"], values["clarifying"], values["closed"]}
    assert not [e for e in b.events if e.get("session_id") in alice_ids]
    assert b.events == []


def record_store_loads(monkeypatch, host, values) -> list[tuple[str, int]]:
    """Every ``store.load`` the host makes from now on, with alice's ids shown as UNKNOWN."""
    loads: list[tuple[str, int]] = []
    real = host.store.load
    alice_ids = {values["approving"], values["clarifying"], values["closed"]}

    async def load(session_id, user_id, **options):
        loads.append((UNKNOWN if session_id in alice_ids else session_id, user_id))
        return await real(session_id, user_id, **options)

    monkeypatch.setattr(host.store, "load", load)
    return loads


@pytest.mark.parametrize(
    ("method", "params"), MATRIX, ids=[f"{m}-{i}" for i, (m, _) in enumerate(MATRIX)]
)
async def test_foreign_session_takes_the_path_of_an_unknown_one(
    connect, alice, bob, monkeypatch, method, params
):
    """Tests that refusing bob alice's session makes the same store lookups, filtered by bob,
    as refusing an unknown id: the answer cannot come sooner for a session that exists."""
    a, b = await connect(alice), await connect(bob)
    values = await alice_sessions(a)
    loads = record_store_loads(monkeypatch, current_host(), values)
    await b.error(method, fill(params, values))
    foreign = list(loads)
    loads.clear()
    await b.error(method, fill(params, values, unknown=True))
    assert foreign == loads
    assert all(user_id == bob.id for _, user_id in foreign)


async def test_foreign_session_on_another_worker_takes_the_path_of_an_unknown_one(
    connect, alice, bob, monkeypatch
):
    """Tests that with a shared registry, a session another worker hosts for alice is looked up
    for bob in the store like an unknown id, not refused from its registry entry at once."""
    a, b = await connect(alice), await connect(bob)
    values = await alice_sessions(a)
    host = current_host()
    remote = "f" * 31 + "e"  # alice's, hosted by a live worker elsewhere
    entries = {remote: HostEntry("specific.elsewhere!", alice.id)}
    monkeypatch.setattr(host.registry, "shared", True, raising=False)
    monkeypatch.setattr(host.registry, "lookup", AsyncMock(side_effect=entries.get))
    monkeypatch.setattr(host.registry, "alive", AsyncMock(return_value=True))
    loads = record_store_loads(monkeypatch, host, values)
    foreign = await b.error("session.resume", {"session_id": remote})
    unknown = await b.error("session.resume", {"session_id": UNKNOWN})
    assert foreign == unknown and foreign["code"] == 4001
    assert loads == [(remote, bob.id), (UNKNOWN, bob.id)]


async def test_a_channel_added_to_another_users_session_group_gets_none_of_its_events(
    connect, alice, bob
):
    """Tests that a socket whose channel a Redis client added to alice's session group (the
    layer does not sign group membership) delivers none of that session's events."""
    a, b = await connect(alice), await connect(bob)
    sid = (await a.call("session.create"))["session_id"]
    host = current_host()
    bobs = [ctx.channel_name for ctx in host.connections.values() if ctx.user_id == bob.pk]
    await host.layer.group_add(host.sessions[sid].group, bobs[0])
    await a.turn(sid, "words for alice only")
    await b.call("gateway.ping")
    assert [e for e in b.events if e.get("session_id") == sid] == []
