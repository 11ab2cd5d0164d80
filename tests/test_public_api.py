"""The stable public names keep working wherever their code lives in the package."""

import os
import subprocess
import sys

import pytest
from django.core.management import get_commands
from django.utils.module_loading import import_string

from tests.support.servers import REPO

#: Dotted names that deployments, ASGI files and settings use (README).
STABLE_NAMES = [
    "gateway_app.routing.websocket_urlpatterns",
    "gateway_app.auth.GatewayAuthStack",
    "gateway_app.urls.urlpatterns",
    "gateway_app.agents.Agent",
    "gateway_app.agents.Turn",
    "gateway_app.layers.ResilientRedisChannelLayer",
]


@pytest.mark.parametrize("name", STABLE_NAMES)
def test_a_stable_name_imports(name):
    """Tests that each stable dotted name imports."""
    assert import_string(name) is not None


def test_stable_paths_re_export_the_objects_where_they_live():
    """Tests that the stable paths are the very objects of the modules that define them, so
    a deployment naming either gets the same routes, middleware and layer."""
    from gateway_app.auth.middleware import GatewayAuthStack
    from gateway_app.sessions.cluster.layers import ResilientRedisChannelLayer
    from gateway_app.transport.ws_urls import websocket_urlpatterns

    assert import_string("gateway_app.routing.websocket_urlpatterns") is websocket_urlpatterns
    assert import_string("gateway_app.auth.GatewayAuthStack") is GatewayAuthStack
    assert import_string("gateway_app.layers.ResilientRedisChannelLayer") is (
        ResilientRedisChannelLayer
    )


def test_the_management_commands_are_the_gateway_apps():
    """Tests that manage.py still finds the gateway's four commands."""
    commands = get_commands()
    for name in ("gateway_stdio", "gateway_token", "gateway_admin", "gateway_chat"):
        assert commands.get(name) == "gateway_app"


def test_the_asgi_application_imports():
    """Tests that ``hermes_site.asgi:application`` imports in a fresh interpreter (it freezes
    the garbage collector, so not in this one)."""
    code = "from hermes_site.asgi import application; print(type(application).__name__)"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "hermes_site.test_settings"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ProtocolTypeRouter"


@pytest.mark.parametrize("script", ["serve", "test", "deploy.py"])
def test_a_launcher_is_where_the_readme_says(script):
    """Tests that each launcher the README documents is in scripts/."""
    assert (REPO / "scripts" / script).is_file()


def test_the_deploy_launcher_takes_its_documented_flags():
    """Tests that scripts/deploy.py still takes --workers, --host, --port and --redis-url."""
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "deploy.py"), "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for flag in ("--workers", "--host", "--port", "--redis-url"):
        assert flag in result.stdout
