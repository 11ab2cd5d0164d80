"""Two real daphne workers sharing a real redis-server through channels-redis."""

import asyncio
import subprocess
import time

import httpx
import pytest

from tests.support.live import ws_rpc
from tests.support.poll import eventually
from tests.support.procs import assert_gone, assert_gone_sync
from tests.support.servers import PYTHON, REPO, Database, GatewayServer, RedisServer

pytestmark = pytest.mark.live


@pytest.fixture
def redis_server():
    with RedisServer() as server:
        yield server


@pytest.fixture(params=["sqlite"])
def database(request, tmp_path):
    """SQLite, unless a test parametrizes it (indirect) with "postgresql" too: a database of
    the run's PostgreSQL server."""
    if request.param == "postgresql":
        return Database(tmp_path, url=request.getfixturevalue("postgres_url")(), migrate=False)
    return Database(tmp_path)


#: For the tests that also run on PostgreSQL (each run costs a cluster start).
BOTH_DATABASES = pytest.mark.parametrize("database", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def cluster(request, database, redis_server):
    """Workers A and B on one database and one Redis; yields (a, b, token). A test may
    parametrize it (indirect) with more environment for both workers."""
    token = database.token("alice")
    env = {"REDIS_URL": redis_server.url, "HERMES_TUI_WS_ORPHAN_REAP_GRACE_S": 1}
    env.update(getattr(request, "param", {}))
    a = GatewayServer(database, env={**env, "HERMES_WORKER_NAME": "A"}).start()
    b = GatewayServer(database, env={**env, "HERMES_WORKER_NAME": "B"}).start()
    try:
        yield a, b, token
        if database.url:
            # The workers really ran on PostgreSQL: B's pool holds a connection to it.
            name = database.url.rpartition("/")[2]
            assert request.getfixturevalue("postgres_server").connections(name) >= 1
    finally:
        a.stop()
        b.stop()
    assert_gone_sync([a.pid, b.pid], within=0)


@BOTH_DATABASES
async def test_create_on_a_resume_and_stream_on_b(cluster):
    """Tests that a session created on A is resumed and streamed from B."""
    a, b, token = cluster
    async with ws_rpc(a.url, token) as on_a:
        sid = (await on_a.call("session.create", {"title": "roaming"}))["session_id"]
        await on_a.turn(sid, "first on a")
    async with ws_rpc(b.url, token) as on_b:
        resumed = await on_b.call("session.resume", {"session_id": sid})
        assert [m["content"] for m in resumed["messages"]] == ["first on a"] * 2
        complete = await on_b.turn(sid, "then streamed via b")
        assert "".join(on_b.deltas(complete["turn_id"])) == "then streamed via b"
        output = await on_b.call("slash.exec", {"session_id": sid, "command": "/status"})
        assert sid in output["output"]
    assert len(a.slash_workers()) == 1 and not b.slash_workers()


async def test_sessions_created_on_a_show_in_session_list_on_b(cluster):
    """Tests that B lists a session created on A (and its later title) as soon as A has
    written it: a worker beside others does not answer session.list from a stale cache."""
    a, b, token = cluster
    async with ws_rpc(b.url, token) as on_b:
        assert (await on_b.call("session.list"))["sessions"] == []
        async with ws_rpc(a.url, token) as on_a:
            sid = (await on_a.call("session.create", {"title": "made on a"}))["session_id"]

            async def listed_on_b():
                rows = (await on_b.call("session.list"))["sessions"]
                return [(r["session_id"], r["title"]) for r in rows]

            assert await eventually(listed_on_b, within=2.0, interval=0.02) == [(sid, "made on a")]
            await on_a.call("slash.exec", {"session_id": sid, "command": "/title renamed"})

            async def renamed_on_b():
                return (await listed_on_b()) == [(sid, "renamed")]

            assert await eventually(renamed_on_b, within=2.0, interval=0.02)


async def test_history_of_a_session_hosted_on_a_pages_from_b(cluster, database):
    """Tests that session.history on B pages the transcript of a session live on A, oldest
    last, with next_before links and every stored message once, and that another user gets
    4001 for it there."""
    a, b, token = cluster
    async with ws_rpc(a.url, token) as on_a:
        sid = (await on_a.call("session.create", {"title": "paged"}))["session_id"]
        for word in ("one", "two", "three"):
            await on_a.turn(sid, word)
        async with ws_rpc(b.url, token) as on_b:

            async def stored():
                page = await on_b.call("session.history", {"session_id": sid, "limit": 200})
                return page["messages"] if len(page["messages"]) == 6 else None

            everything = await eventually(stored, within=2.0, interval=0.02)
            pages, before = [], None
            while True:
                params = {"session_id": sid, "limit": 4, **({"before": before} if before else {})}
                page = await on_b.call("session.history", params)
                pages.append(page["messages"])
                if not page["has_more"]:
                    assert page["next_before"] is None
                    break
                before = page["next_before"]
            assert [m for page in reversed(pages) for m in page] == everything
            assert [m["content"] for m in everything] == ["one", "one", "two", "two"] + [
                "three"
            ] * 2
            assert [len(page) for page in pages] == [4, 2]
        async with ws_rpc(b.url, database.token("bob")) as bob_on_b:
            error = await bob_on_b.error("session.history", {"session_id": sid})
            assert error["code"] == 4001


async def test_close_on_b_ends_the_slash_worker_on_a(cluster):
    """Tests that session.close from B tears down the subprocess on host A."""
    a, b, token = cluster
    async with ws_rpc(a.url, token) as on_a:
        sid = (await on_a.call("session.create"))["session_id"]
        await on_a.call("slash.exec", {"session_id": sid, "command": "/version"})
        (pid,) = a.slash_workers()
        async with ws_rpc(b.url, token) as on_b:
            assert await on_b.call("session.close", {"session_id": sid}) == {"closed": True}
        event = await on_a.event("session.closed")
        assert event["payload"]["reason"] == "closed"
    await assert_gone([pid], within=0)


async def test_approval_asked_via_a_is_answered_via_b(cluster):
    """Tests that a question of a turn on A is answered from a connection on B."""
    a, b, token = cluster
    async with ws_rpc(a.url, token) as on_a:
        sid = (await on_a.call("session.create"))["session_id"]
        await on_a.call("prompt.submit", {"session_id": sid, "text": "!tool uptime"})
        request = (await on_a.event("approval.request"))["payload"]
        async with ws_rpc(b.url, token) as on_b:
            await on_b.call(
                "approval.respond",
                {"session_id": sid, "request_id": request["request_id"], "choice": "once"},
            )
        complete = (await on_a.event("message.complete"))["payload"]
        assert complete["text"] == "ran: uptime"


async def test_disconnect_on_b_reaps_on_a_and_reconnect_cancels(cluster):
    """Tests that reaping works across workers: scheduled on A, cancelled by a resume."""
    a, b, token = cluster
    async with ws_rpc(a.url, token) as on_a:
        kept = (await on_a.call("session.create"))["session_id"]
        reaped = (await on_a.call("session.create"))["session_id"]
        for sid in (kept, reaped):
            await on_a.call("slash.exec", {"session_id": sid, "command": "/version"})
    async with ws_rpc(b.url, token) as on_b:
        for sid in (kept, reaped):
            await on_b.call("session.resume", {"session_id": sid})
    # Both detached again (through B); resume one from A within the grace.
    async with ws_rpc(a.url, token) as again:
        await again.call("session.resume", {"session_id": kept})

        async def statuses():
            rows = (await again.call("session.list"))["sessions"]
            return {row["session_id"]: row["status"] for row in rows}

        async def reaped_closed():
            return (await statuses())[reaped] == "closed"

        # Both were detached at once: by the time one is reaped the other's grace is over.
        await eventually(reaped_closed, within=10, interval=0.1)
        assert (await statuses())[kept] == "live"
        # The reaped session's slash worker is told to go with its teardown; it may take a
        # moment to exit after the row says closed.
        await eventually(lambda: len(a.slash_workers()) == 1, within=5, interval=0.1)


#: The defaults: a host silent HOST_DEAD_AFTER_S is dead; a forward checks it each HEARTBEAT_S.
HOST_DEAD_AFTER_S, HEARTBEAT_S = 3.0, 1.0
#: Far above HOST_DEAD_AFTER_S: a resume that waited on the killed host until then would show.
SLOW_FORWARDS = {"HERMES_GATEWAY_OPTIONS": '{"FORWARD_TIMEOUT_S": 20}'}


@BOTH_DATABASES
@pytest.mark.parametrize("cluster", [SLOW_FORWARDS], indirect=True)
async def test_kill_9_of_the_host_then_resume_on_b_cold_starts(cluster):
    """Tests that after A dies, B resumes A's session from the transcript within about
    HOST_DEAD_AFTER_S of the kill (a resume forwarded to A meanwhile stops waiting once A
    counts as dead, not at FORWARD_TIMEOUT_S); A's workers exit."""
    a, b, token = cluster
    async with ws_rpc(a.url, token) as on_a:
        sid = (await on_a.call("session.create"))["session_id"]
        await on_a.turn(sid, "survives the crash")
        await on_a.call("slash.exec", {"session_id": sid, "command": "/version"})
        workers = a.slash_workers()
        assert len(workers) == 1
        async with ws_rpc(b.url, token) as on_b:

            async def stored_messages():
                rows = (await on_b.call("session.list"))["sessions"]
                return [row["messages"] for row in rows if row["session_id"] == sid] == [2]

            # The turn is in the database (written behind, at once beside other workers).
            await eventually(stored_messages, within=10, interval=0.05)
        async with ws_rpc(b.url, token) as on_b:
            a.kill()
            started = time.monotonic()

            async def resume():
                return await on_b.call("session.resume", {"session_id": sid})

            resumed = await eventually(resume, within=15, interval=0.1, retry_on=(Exception,))
            served_after = time.monotonic() - started
            assert [m["content"] for m in resumed["messages"]] == ["survives the crash"] * 2
            print(f"resume after kill -9 served in {served_after:.2f} s")
            # Its liveness key lapses HOST_DEAD_AFTER_S after A's last beat; the forward
            # notices within a HEARTBEAT_S, then B cold-starts the session.
            assert served_after < HOST_DEAD_AFTER_S + HEARTBEAT_S + 1.0
    await assert_gone(workers, within=5)
    async with ws_rpc(b.url, token) as on_b:
        complete = await on_b.turn(sid, "alive on b")
        assert complete["text"] == "alive on b"


async def test_redis_restart_is_survived_and_recovered_within_10s(cluster, redis_server):
    """Tests that a Redis restart keeps connections open and service returns within 10 s."""
    a, b, token = cluster
    async with ws_rpc(a.url, token) as on_a:
        sid = (await on_a.call("session.create"))["session_id"]
        redis_server.stop()
        # Needs nothing from Redis: answered while it is down.
        assert await on_a.call("gateway.ping") == {"pong": True}
        await asyncio.sleep(1.0)
        redis_server.start()
        back = time.monotonic()
        on_a.timeout = 2  # per attempt: a turn whose events were lost is retried

        async def streams_again():
            complete = await on_a.turn(sid, "after the restart")
            return complete["text"] == "after the restart"

        await eventually(streams_again, within=10, interval=0.1, retry_on=(Exception,))
        assert time.monotonic() - back < 10
    async with ws_rpc(b.url, token) as on_b:

        async def cross_worker():
            return await on_b.call("session.resume", {"session_id": sid})

        await eventually(cross_worker, within=10, interval=0.1, retry_on=(Exception,))


def staff_client(server, database):
    """An httpx client logged in to the admin as a staff user."""
    database.create_superuser("root", "root-pass-123")
    client = httpx.Client(base_url=server.http_url, timeout=10)
    client.get("/admin/login/")
    response = client.post(
        "/admin/login/",
        data={
            "username": "root",
            "password": "root-pass-123",
            "csrfmiddlewaretoken": client.cookies["csrftoken"],
            "next": "/admin/",
        },
        headers={"Referer": server.http_url + "/admin/login/"},
    )
    assert response.status_code == 302
    return client


async def test_revoking_a_token_closes_its_sockets_on_every_worker(cluster, database, redis_server):
    """Tests that ``gateway_token --revoke`` (a third process on the same Redis) closes the
    token's sockets on both workers with 4003, while another token's socket stays open."""
    a, b, token = cluster
    other = database.token("alice")
    async with (
        ws_rpc(a.url, token) as on_a,
        ws_rpc(b.url, token) as on_b,
        ws_rpc(b.url, other) as bystander,
    ):
        await asyncio.to_thread(
            subprocess.run,
            [PYTHON, "manage.py", "gateway_token", "alice", "--revoke", token],
            cwd=REPO,
            env={**database.env, "REDIS_URL": redis_server.url},
            check=True,
            capture_output=True,
            timeout=60,
        )
        for client in (on_a, on_b):
            await asyncio.wait_for(client.websocket.wait_closed(), 10)
            assert client.websocket.close_code == 4003
        assert await bystander.call("gateway.ping") == {"pong": True}


async def test_live_page_data_covers_every_worker(cluster):
    """Tests that the live page of worker A reports worker B's real state too."""
    a, b, token = cluster
    async with ws_rpc(a.url, token) as on_a, ws_rpc(b.url, token) as on_b:
        await on_a.call("session.create")
        await on_b.call("session.create")
        await on_b.call("session.create")
        client = await asyncio.to_thread(staff_client, a, a.database)
        response = await asyncio.to_thread(
            client.get, "/admin/gateway_app/gatewaysession/live.json"
        )
        client.close()
    data = response.json()
    assert data["host"]["worker"] == "A" and data["host"]["sessions"] == 1
    (other,) = data["other_workers"]
    assert other["worker"] == "B" and other["sessions"] == 2 and other["connections"] == 1
