"""Every module of gateway_app imports on its own: no import cycle depends on what ran first."""

import json
import os
import subprocess
import sys

from tests.support.servers import REPO

# Run in a fresh interpreter: for each module, forget every gateway_app module already
# imported, import this one first, and collect every failure so one run reports them all.
EACH_MODULE_FIRST = """
import importlib, json, pkgutil, sys, traceback, warnings

setup = {setup}
if setup:
    import django

    django.setup()
import gateway_app

failures = {{}}
names = {names}
if names is None:
    found = pkgutil.walk_packages(
        gateway_app.__path__, "gateway_app.", onerror=lambda name: failures.setdefault(name, "")
    )
    names = sorted(info.name for info in found)
# Without Django set up, Django is forgotten too, so each module shows whether it loads it.
forget = {{"gateway_app"}} if setup else {{"gateway_app", "django"}}
django_loaded = {{}}
for name in names:
    for loaded in [m for m in sys.modules if m.split(".")[0] in forget]:
        del sys.modules[loaded]
    try:
        with warnings.catch_warnings():
            # Models defined again in this interpreter: Django warns, which is expected here.
            warnings.simplefilter("ignore", RuntimeWarning)
            importlib.import_module(name)
    except BaseException:
        failures[name] = traceback.format_exc(limit=-3)
    if "django" in sys.modules:
        django_loaded[name] = True
print(json.dumps({{"names": names, "failures": failures, "django": sorted(django_loaded)}}))
"""

#: Modules that run without Django: the slash worker child and the Python client package.
DJANGO_FREE = [
    "gateway_app",
    "gateway_app.slash",
    "gateway_app.slash.commands",
    "gateway_app.slash.worker",
    "gateway_app.client",
    "gateway_app.client.chat",
    "gateway_app.client.client",
    "gateway_app.client.connection",
    "gateway_app.client.errors",
    "gateway_app.client.events",
    "gateway_app.client.results",
    "gateway_app.client.turn",
]


def run_each_first(env: dict[str, str], setup: bool, names: list[str] | None) -> dict:
    code = EACH_MODULE_FIRST.format(setup=setup, names=json.dumps(names) if names else None)
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_every_module_imports_as_the_first_gateway_app_import():
    """Tests that each module of gateway_app (migrations and management commands included),
    imported first in an interpreter where Django is set up, imports without error."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "hermes_site.test_settings"}
    report = run_each_first(env, setup=True, names=None)
    assert "gateway_app.sessions.reaper" in report["names"]
    assert "gateway_app.migrations.0001_initial" in report["names"]
    assert report["failures"] == {}, "\n".join(report["failures"].values())


def test_the_slash_worker_and_the_client_import_without_django():
    """Tests that the slash worker and the Python client package, each imported first in an
    interpreter with no Django settings, import without error and without loading Django."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO)}
    report = run_each_first(env, setup=False, names=DJANGO_FREE)
    assert report["failures"] == {}, "\n".join(report["failures"].values())
    assert report["django"] == []


def test_the_django_free_list_names_every_client_module():
    """Tests that DJANGO_FREE lists every module of gateway_app.client, so a new client
    module cannot silently start importing Django."""
    import pkgutil

    import gateway_app.client

    found = {
        info.name
        for info in pkgutil.walk_packages(gateway_app.client.__path__, "gateway_app.client.")
    }
    assert found <= set(DJANGO_FREE)
