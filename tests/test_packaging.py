"""The wheel: the gateway_app package whole (templates, static, migrations, py.typed), none
of the demo project, tests or scripts, and the dependencies gateway_app imports."""

from __future__ import annotations

import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

import gateway_app
from tests.support.hostproject import build_wheel
from tests.support.servers import REPO

APP = REPO / "gateway_app"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    with zipfile.ZipFile(build_wheel(tmp_path_factory.mktemp("wheel"))) as built:
        yield built


@pytest.fixture(scope="module")
def names(wheel) -> set[str]:
    return set(wheel.namelist())


@pytest.fixture(scope="module")
def metadata(wheel):
    (path,) = [name for name in wheel.namelist() if name.endswith(".dist-info/METADATA")]
    return Parser().parsestr(wheel.read(path).decode())


def shipped(directory: Path) -> set[str]:
    """Every file under ``directory`` of the source tree, as a wheel names it."""
    return {
        path.relative_to(REPO).as_posix()
        for path in directory.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


@pytest.mark.parametrize("directory", ["templates", "static", "migrations"])
def test_the_wheel_holds_every_file_of_the_apps_data_directories(names, directory):
    """Tests that each template, static file (the chat ES modules, the vendored marked and
    DOMPurify with their licenses) and migration of the source tree is in the wheel."""
    expected = shipped(APP / directory)
    assert expected and expected <= names, sorted(expected - names)


@pytest.mark.parametrize(
    "name",
    [
        "gateway_app/py.typed",
        "gateway_app/static/gateway_app/chat.js",
        "gateway_app/static/gateway_app/chat/app.js",
        "gateway_app/static/gateway_app/vendor/marked.esm.js",
        "gateway_app/static/gateway_app/vendor/purify.es.mjs",
        "gateway_app/static/gateway_app/vendor/uPlot.iife.min.js",
        "gateway_app/templates/gateway_app/chat.html",
        "gateway_app/templates/admin/gateway_app/app_index.html",
        "gateway_app/migrations/0001_initial.py",
    ],
)
def test_the_wheel_holds_the_files_a_host_project_needs(names, name):
    """Tests that the files the app cannot work without are in the wheel by name."""
    assert name in names


def test_the_wheel_holds_only_the_app(names):
    """Tests that the demo project, tests, benchmarks and scripts stay out of the wheel, and
    so do bytecode caches."""
    top_level = {name.split("/", 1)[0] for name in names}
    assert top_level == {"gateway_app", f"hermes_gateway-{gateway_app.__version__}.dist-info"}
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]


def test_the_wheel_version_is_the_apps(metadata):
    """Tests that the one version source, gateway_app.__version__, is the wheel's version."""
    assert metadata["Version"] == gateway_app.__version__


def test_the_wheel_declares_the_runtime_dependencies_and_extras(metadata):
    """Tests that installing the wheel brings what gateway_app imports when it runs, and the
    extras bring the optional parts."""
    requires = metadata.get_all("Requires-Dist")
    core = {r.split("<")[0].split(">")[0].split("[")[0] for r in requires if "extra ==" not in r}
    assert {
        "django",
        "channels",
        "daphne",
        "orjson",
        "channels-redis",
        "msgpack",
        "prometheus-client",
    } <= core
    assert not core & {"whitenoise", "django-axes", "psutil", "httpx", "websockets", "pytest"}
    assert set(metadata.get_all("Provides-Extra")) == {
        "redis",
        "openai",
        "postgres",
        "client",
        "chat",
    }


def test_the_wheel_carries_the_licenses(names, metadata):
    """Tests that the BSD-3-Clause license and the vendored libraries' licenses ship."""
    assert "BSD-3-Clause" in metadata["License-Expression"]
    licenses = {name.rsplit("/", 1)[-1] for name in names if ".dist-info/licenses/" in name}
    assert licenses == {"LICENSE", "marked.LICENSE", "dompurify.LICENSE", "uplot.LICENSE"}
