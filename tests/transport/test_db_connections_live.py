"""
The gateway never leaks database connections: thousands of requests that reach the database
(token lookups, session rows, transcripts, listings) through real daphne leave the server
holding exactly the SQLite handles it held after its first few requests, and on PostgreSQL
never more server connections than its pool allows.
"""

from __future__ import annotations

import asyncio
import json
import threading

import psutil
import psycopg
import pytest

from tests.support.live import ws_rpc
from tests.support.servers import Database, GatewayServer

pytestmark = pytest.mark.live

CONNECTIONS = 8
ROUNDS = 20  # per connection; each round is a reconnect and five database-backed calls


def sqlite_handles(pid: int, db_path) -> int:
    """Open file descriptors of the process on the database file and its -wal/-shm files."""
    prefix = str(db_path)
    return sum(1 for f in psutil.Process(pid).open_files() if f.path.startswith(prefix))


async def database_round(url: str, token: str) -> None:
    """A new connection (token lookup), a session created, prompted (transcript rows),
    listed (database read: LIST_CACHE_S is 0), closed (final status)."""
    async with ws_rpc(url, token) as rpc:
        sid = (await rpc.call("session.create", {"title": "db"}))["session_id"]
        await rpc.turn(sid, "hello database")
        await rpc.call("session.list")
        await rpc.call("session.close", {"session_id": sid})


async def settled(url: str, token: str) -> None:
    """Returns once the write-behind queue is empty: a listing flushes it before reading."""
    async with ws_rpc(url, token) as rpc:
        await rpc.call("session.list")


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    return Database(tmp_path_factory.mktemp("dbconn"))


async def test_many_database_backed_requests_leak_no_connection(database):
    """Tests that after 160 connections and ~800 database-backed calls the daphne process
    has no more SQLite handles open than after its first round (no connection per request,
    per thread or per socket is left behind)."""
    tokens = [database.token(f"db-user-{index}") for index in range(CONNECTIONS)]
    options = {"LIST_CACHE_S": 0, "RATE_LIMIT_PER_S": 0, "TOKEN_RECHECK_S": 0.1}
    with GatewayServer(database, env={"HERMES_GATEWAY_OPTIONS": json.dumps(options)}) as server:
        await asyncio.gather(*(database_round(server.url, token) for token in tokens))
        await settled(server.url, tokens[0])
        warm = sqlite_handles(server.pid, database.path)

        for _ in range(ROUNDS):
            await asyncio.gather(*(database_round(server.url, token) for token in tokens))
        await settled(server.url, tokens[0])
        after = sqlite_handles(server.pid, database.path)

        assert warm >= 1, "the probe sees no database handle at all"
        assert after == warm
        async with ws_rpc(server.url, tokens[0]) as rpc:
            assert len((await rpc.call("session.list"))["sessions"]) == ROUNDS + 1


POOL_MAX = 3
PG_ROUNDS = 2
#: Connections to the database other than the asking one.
PEERS = "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"


async def test_postgresql_connections_stay_within_the_pool(postgres_server, postgres_url, tmp_path):
    """Tests that on PostgreSQL the server holds at most its pool's size of connections
    while 8 clients make ~80 database-backed calls at once, and as many after them."""
    url = postgres_url(pool_max_size=POOL_MAX)
    name = url.partition("?")[0].rpartition("/")[2]
    database = Database(tmp_path, url=url, migrate=False)
    tokens = [database.token(f"pg-user-{index}") for index in range(CONNECTIONS)]
    options = {"LIST_CACHE_S": 0, "RATE_LIMIT_PER_S": 0, "TOKEN_RECHECK_S": 0.1}
    with GatewayServer(database, env={"HERMES_GATEWAY_OPTIONS": json.dumps(options)}) as server:
        peak = 0
        stop = threading.Event()

        def watch() -> None:
            # One connection of its own (each login costs a SCRAM exchange), excluded.
            nonlocal peak
            with psycopg.connect(postgres_server.url(name), autocommit=True) as probe:
                while not stop.wait(0.02):
                    (count,) = probe.execute(PEERS, (name,)).fetchone()
                    peak = max(peak, count)

        watcher = asyncio.create_task(asyncio.to_thread(watch))
        try:
            for _ in range(PG_ROUNDS):
                await asyncio.gather(*(database_round(server.url, token) for token in tokens))
        finally:
            stop.set()
            await watcher
        await asyncio.sleep(0.5)  # write-behind settles
        after = postgres_server.connections(name)
        assert 1 <= peak <= POOL_MAX
        assert 1 <= after <= POOL_MAX
