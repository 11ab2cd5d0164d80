"""Every gateway option is defined once in gateway_app.conf: its type, default, environment
variable and documentation. setting() returns typed values, hermes_site reads the variables
through one helper, and the README's settings table is generated from the definitions."""

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from gateway_app.conf import (
    OPTIONS,
    options_from_environ,
    registry_redis_url,
    setting,
)
from gateway_app.conf.table import END, START, readme_table, render_table

REPO = Path(__file__).resolve().parents[1]
SETTINGS_FILE = REPO / "hermes_site" / "settings.py"

#: The environment variables settings.py reads into HERMES_GATEWAY.
GATEWAY_VARIABLES = [option.env for option in OPTIONS if option.env] + ["HERMES_GATEWAY_OPTIONS"]


@pytest.fixture
def clean_environ(monkeypatch):
    """No gateway variable set, whatever the environment the tests run in."""
    for name in GATEWAY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def gateway_from_settings_file() -> dict:
    return runpy.run_path(str(SETTINGS_FILE))["HERMES_GATEWAY"]


### The README table ###


def test_the_readme_settings_table_is_the_one_the_definitions_render():
    """Tests that the table between the README's settings-table markers is exactly the one
    rendered from gateway_app.conf's definitions, so docs and defaults cannot drift apart."""
    readme = (REPO / "README.md").read_text()
    assert readme_table(readme) == render_table(), (
        "README.md's settings table differs from gateway_app/conf/options.py; regenerate it "
        "with: .venv/bin/python -m gateway_app.conf --write README.md"
    )


def test_the_rendered_table_has_one_row_per_option_with_its_env_and_default():
    """Tests that every option gets a row naming its variable and its default as a reader
    would write it (sizes in KiB/MiB/GiB, whole seconds without a decimal point)."""
    rows = {row.split(" | ")[0].strip("| `"): row for row in render_table().splitlines()[2:]}
    assert set(rows) == {option.name for option in OPTIONS}
    assert "| `REAP_GRACE_S` | `HERMES_TUI_WS_ORPHAN_REAP_GRACE_S` | 20 |" in rows["REAP_GRACE_S"]
    assert "| `MAX_FRAME_BYTES` |  | 1 MiB |" in rows["MAX_FRAME_BYTES"]
    assert "| `TERMINAL_NETWORK` |  | false |" in rows["TERMINAL_NETWORK"]


def test_the_module_entry_point_prints_the_table_and_can_rewrite_a_readme(tmp_path):
    """Tests that `python -m gateway_app.conf` prints the table and `--write` replaces the
    one between the markers of a file, leaving the rest alone, without Django settings."""
    readme = tmp_path / "README.md"
    readme.write_text(f"before\n{START}\n| stale |\n{END}\nafter\n")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "gateway_app.conf"]
    printed = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    assert printed.stdout == render_table() + "\n"
    subprocess.run([*command, "--write", str(readme)], env=env, check=True)
    assert readme.read_text() == f"before\n{START}\n{render_table()}\n{END}\nafter\n"


### Typed values ###


def test_an_integer_option_given_as_a_string_is_an_int(settings):
    """Tests that an integer option set to a numeric string (as an environment variable
    gives it) is an int, so no caller needs int()."""
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "MAX_FRAME_BYTES": "1048576"}
    value = setting("MAX_FRAME_BYTES")
    assert value == 1048576 and type(value) is int


def test_an_integer_option_from_the_environment_is_an_int(settings, clean_environ):
    """Tests that MAX_FRAME_BYTES given by HERMES_GATEWAY_OPTIONS as "1048576", and
    MAX_LIVE_SESSIONS by its variable, reach setting() as ints."""
    clean_environ.setenv("HERMES_GATEWAY_OPTIONS", json.dumps({"MAX_FRAME_BYTES": "1048576"}))
    clean_environ.setenv("HERMES_TUI_MAX_LIVE_SESSIONS", "300")
    settings.HERMES_GATEWAY = gateway_from_settings_file()
    assert type(setting("MAX_FRAME_BYTES")) is int and setting("MAX_FRAME_BYTES") == 1048576
    assert type(setting("MAX_LIVE_SESSIONS")) is int and setting("MAX_LIVE_SESSIONS") == 300


def test_a_duration_given_as_an_int_is_a_float(settings):
    """Tests that a duration written as a whole number is a float."""
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "REAP_GRACE_S": 1}
    assert type(setting("REAP_GRACE_S")) is float and setting("REAP_GRACE_S") == 1.0


def test_every_default_is_of_its_options_type():
    """Tests that the definitions' own defaults have the type setting() promises."""
    assert [o.name for o in OPTIONS if type(o.default) is not o.type] == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SESSION_TTL_S", "6h"),
        ("MAX_LIVE_SESSIONS", 2.5),
        ("MAX_LIVE_SESSIONS", "2.5"),
        ("DELTA_COALESCE_MS", True),
        ("RATE_LIMIT_BURST", False),
        ("TOKEN_RECHECK_S", "inf"),
        ("TERMINAL_NETWORK", "yes"),
    ],
)
def test_a_value_that_is_not_of_the_options_type_is_kept_for_the_checks(settings, name, value):
    """Tests that a value which does not convert losslessly (or is a bool for a number) is
    returned unchanged, for manage.py check to report, instead of crashing or guessing."""
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, name: value}
    assert setting(name) == value and type(setting(name)) is type(value)


### The environment (hermes_site/settings.py) ###


def test_settings_hold_only_what_the_environment_set(clean_environ):
    """Tests that without gateway variables HERMES_GATEWAY is empty: the defaults live in
    gateway_app.conf alone."""
    assert gateway_from_settings_file() == {}


def test_environment_variables_are_parsed_by_the_options_type(clean_environ):
    """Tests that each variable reaches HERMES_GATEWAY as its option's type, and that
    HERMES_GATEWAY_OPTIONS overrides it."""
    environ = {
        "HERMES_TUI_WS_ORPHAN_REAP_GRACE_S": "20",
        "HERMES_TUI_MAX_LIVE_SESSIONS": "7",
        "HERMES_AGENT": "openai",
        "HERMES_GATEWAY_OPTIONS": '{"MODEL": "m"}',
        "HERMES_MODEL": "ignored",
    }
    parsed = options_from_environ(environ)
    assert parsed == {"REAP_GRACE_S": 20.0, "MAX_LIVE_SESSIONS": 7, "AGENT": "openai", "MODEL": "m"}
    assert type(parsed["REAP_GRACE_S"]) is float and type(parsed["MAX_LIVE_SESSIONS"]) is int


def test_an_empty_numeric_variable_is_unset():
    """Tests that a numeric variable set to "" leaves the option at its default, as before."""
    assert options_from_environ({"HERMES_TUI_SESSION_TTL_S": ""}) == {}


@pytest.mark.parametrize(
    ("variable", "value"),
    [("HERMES_TUI_SESSION_TTL_S", "6h"), ("HERMES_TUI_MAX_LIVE_SESSIONS", "1e3")],
)
def test_a_malformed_variable_is_improperly_configured_naming_it(variable, value):
    """Tests that the helper refuses a value its option's type cannot parse, naming the
    variable and the value."""
    with pytest.raises(ImproperlyConfigured) as raised:
        options_from_environ({variable: value})
    assert variable in str(raised.value) and repr(value) in str(raised.value)


def test_importing_the_options_configures_nothing():
    """Tests that importing gateway_app.conf (as hermes_site.settings does, before Django is
    set up) neither configures settings nor imports models or the app registry."""
    code = (
        "import sys, gateway_app.conf\n"
        "from django.conf import settings\n"
        "print(settings.configured, 'gateway_app.models' in sys.modules,"
        " 'django.contrib.auth.models' in sys.modules)\n"
    )
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "False", "False"]


### The registry's Redis ###

RESILIENT = "gateway_app.layers.ResilientRedisChannelLayer"


def layers(backend: str, **config) -> dict:
    return {"default": {"BACKEND": backend, "CONFIG": config}}


def test_one_worker_alone_has_no_registry_redis(settings):
    """Tests that the in-memory layer without REDIS_URL means the local registry."""
    settings.CHANNEL_LAYERS = layers("channels.layers.InMemoryChannelLayer")
    assert registry_redis_url() == ""


def test_the_redis_url_option_names_the_registry_redis(settings):
    """Tests that HERMES_GATEWAY['REDIS_URL'] (env REDIS_URL in hermes_site) is used."""
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "REDIS_URL": "redis://r:6379/1"}
    settings.CHANNEL_LAYERS = layers(RESILIENT, hosts=["redis://other:6379/0"])
    assert registry_redis_url() == "redis://r:6379/1"


@pytest.mark.parametrize(
    ("hosts", "url"),
    [
        (["redis://a:6379/2"], "redis://a:6379/2"),
        ([{"address": "redis://b:6379/0", "socket_timeout": 15}], "redis://b:6379/0"),
        ([("c", 6380)], "redis://c:6380"),
        (None, "redis://localhost:6379"),
    ],
)
def test_a_redis_channel_layer_gives_the_registry_its_first_host(settings, hosts, url):
    """Tests that without REDIS_URL the registry shares the default Redis layer's first host,
    so a Redis layer can never run beside per-worker registries."""
    config = {} if hosts is None else {"hosts": hosts}
    settings.CHANNEL_LAYERS = layers(RESILIENT, **config)
    assert registry_redis_url() == url


def test_a_plain_channels_redis_layer_gives_the_registry_its_host(settings):
    """Tests that the derivation covers channels-redis' own layers, not only the project's."""
    settings.CHANNEL_LAYERS = layers("channels_redis.core.RedisChannelLayer", hosts=["redis://d"])
    assert registry_redis_url() == "redis://d"


def test_a_host_with_credentials_outside_its_url_is_not_guessed(settings):
    """Tests that a first host whose password lives beside its address gives no URL (the
    check E043 asks for REDIS_URL) rather than a URL that would fail to authenticate."""
    hosts = [{"address": "redis://e:6379/0", "password": "pw"}]
    settings.CHANNEL_LAYERS = layers(RESILIENT, hosts=hosts)
    assert registry_redis_url() == ""
