"""Live fixtures of the client tests: one real daphne per module, and alice's token."""

from __future__ import annotations

import pytest

from tests.support.servers import Database, GatewayServer


@pytest.fixture(scope="module")
def database(tmp_path_factory) -> Database:
    return Database(tmp_path_factory.mktemp("client"))


@pytest.fixture(scope="module")
def server(database):
    with GatewayServer(database) as running:
        yield running


@pytest.fixture(scope="module")
def token(database) -> str:
    return database.token("alice")
