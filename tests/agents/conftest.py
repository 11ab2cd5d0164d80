"""Fixtures for the agent tests: the gateway wired to a loopback fake model server."""

from collections.abc import AsyncIterator

import pytest

from gateway_app.agents import close_agent
from tests.agents.fake_openai import FakeOpenAI


@pytest.fixture
async def openai_gateway(settings) -> AsyncIterator[FakeOpenAI]:
    """The gateway configured with HERMES_AGENT=openai against a loopback fake server."""
    server = FakeOpenAI()
    await server.start()
    settings.HERMES_GATEWAY = {
        **settings.HERMES_GATEWAY,
        "AGENT": "openai",
        "OPENAI_BASE_URL": server.base_url,
        "OPENAI_API_KEY": "sk-test",
        "MODEL": "test-model",
    }
    await close_agent()
    yield server
    await close_agent()
    await server.close()


@pytest.fixture
def grant_terminal(db):
    """``await grant_terminal(user)`` gives the user the gateway_app.use_terminal permission."""
    from channels.db import database_sync_to_async
    from django.contrib.auth.models import Permission

    @database_sync_to_async
    def grant(user):
        permission = Permission.objects.get(
            codename="use_terminal", content_type__app_label="gateway_app"
        )
        user.user_permissions.add(permission)
        return user

    return grant
