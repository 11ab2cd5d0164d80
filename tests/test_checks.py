"""``manage.py check`` catches bad gateway settings before the server starts, and settings.py
refuses malformed environment variables by name."""

import runpy
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from gateway_app.agents import sandbox
from gateway_app.checks import (
    check_channel_layer,
    check_gateway_settings,
    check_layer_signing,
    check_login_url,
    check_session_engine,
    check_trusted_origins,
)
from gateway_app.conf import DEFAULTS

SETTINGS_FILE = Path(__file__).resolve().parents[1] / "hermes_site" / "settings.py"


def ids(settings_errors):
    return sorted(error.id for error in settings_errors)


def test_the_defaults_pass(settings):
    """Tests that the shipped settings raise nothing."""
    assert check_gateway_settings(None) == []


def test_an_unknown_option_is_a_warning(settings):
    """Tests that a misspelt option is reported instead of silently ignored."""
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "REAP_GRACE": 5}
    assert ids(check_gateway_settings(None)) == ["gateway_app.W001"]


@pytest.mark.parametrize("value", ["10.0.0.0/33", "localhost", "127.0.0.1,nope"])
def test_a_metrics_allow_that_is_not_a_list_of_networks_is_an_error(settings, value):
    """Tests that METRICS_ALLOW must be comma-separated CIDR networks (E070)."""
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "METRICS_ALLOW": value}
    assert ids(check_gateway_settings(None)) == ["gateway_app.E070"]


@pytest.mark.parametrize("value", ["", "10.0.0.0/8, ::1", "192.0.2.5"])
def test_a_metrics_allow_of_networks_passes(settings, value):
    """Tests that networks, bare addresses and the empty list are accepted."""
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "METRICS_ALLOW": value}
    assert check_gateway_settings(None) == []


@pytest.mark.parametrize("value", ["0.0.0.0/0", "127.0.0.1,::/0"])
def test_a_metrics_allow_of_every_address_is_a_warning(settings, value):
    """Tests that an allow-list admitting the whole internet is flagged (W070)."""
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "METRICS_ALLOW": value}
    assert ids(check_gateway_settings(None)) == ["gateway_app.W070"]


def test_a_negative_duration_is_an_error(settings):
    """Tests that a duration below zero fails the check, naming the option."""
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "REAP_GRACE_S": -1}
    (error,) = check_gateway_settings(None)
    assert error.id == "gateway_app.E001" and "REAP_GRACE_S" in error.msg


def test_a_limit_below_one_is_an_error(settings):
    """Tests that count limits must be positive integers."""
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "MAX_LIVE_SESSIONS": 0}
    assert ids(check_gateway_settings(None)) == ["gateway_app.E002"]


def test_group_refresh_not_below_the_layers_group_expiry_is_a_warning(settings):
    """Tests that renewing group memberships less often than the layer forgets them warns."""
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"group_expiry": 600},
        }
    }
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "GROUP_REFRESH_S": 600}
    assert ids(check_gateway_settings(None)) == ["gateway_app.W002"]


def test_an_unknown_agent_is_an_error(settings):
    """Tests that HERMES_AGENT must name a built-in backend."""
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "AGENT": "gpt"}
    assert ids(check_gateway_settings(None)) == ["gateway_app.E003"]


#: For every option, a value its check must refuse.
BAD_VALUES = {
    "REAP_GRACE_S": -1,
    "SESSION_TTL_S": "6h",
    "MAX_LIVE_SESSIONS": 0,
    "SWEEP_INTERVAL_S": -0.5,
    "AGENT": "gpt",
    "TOOLS": "gateway_app.agents.tools.terminal.TerminalTool",
    "OPENAI_BASE_URL": 443,
    "OPENAI_API_KEY": None,
    "MODEL": ["gpt"],
    "AGENT_TIMEOUT_S": 0,
    "DELTA_COALESCE_MS": True,
    "REPLAY_BUFFER_EVENTS": 1.5,
    "REPLAY_BUFFER_BYTES": -1,
    "SLASH_TIMEOUT_S": 0,
    "SLASH_CLOSE_TIMEOUT_S": -1,
    "SLASH_OUTPUT_LIMIT": 0,
    "SLASH_COMMANDS": "tests.extensions.slash_commands",
    "RPC_METHODS": ["tests/extensions/methods.py"],
    "TERMINAL_TIMEOUT_S": -5,
    "TERMINAL_OUTPUT_LIMIT": "16k",
    "MAX_FRAME_BYTES": 0,
    "MAX_MESSAGE_BYTES": 0,
    "MAX_LINES_PER_FRAME": 0,
    "RATE_LIMIT_PER_S": float("nan"),
    "RATE_LIMIT_BURST": 0,
    "USER_RATE_LIMIT_PER_S": -1,
    "USER_RATE_LIMIT_BURST": 0,
    "MAX_SESSIONS_PER_USER": 0,
    "MAX_STORED_SESSIONS_PER_USER": -1,
    "SESSION_RETENTION_DAYS": -1,
    "MAX_CONNECTIONS_PER_USER": 0,
    "MAX_PROMPT_CHARS": 0,
    "SEND_QUEUE_LIMIT": 0,
    "SEND_QUEUE_BYTES": 0,
    "TOKEN_RECHECK_S": float("inf"),
    "SKIN": "dark",
    "WORKER_NAME": 7,
    "HEARTBEAT_S": 0,
    "GROUP_REFRESH_S": -1,
    "HOST_DEAD_AFTER_S": 0,
    "FORWARD_TIMEOUT_S": 0,
    "DRAIN_TIMEOUT_S": -1,
    "STORE_BATCH_MS": -1,
    "LIST_CACHE_S": -1,
    "HISTORY_LIMIT": 0,
    "HISTORY_BYTES": 0,
    "MAX_MESSAGE_CHARS": -1,
    "SETTLE_INTERVAL_S": -1,
    "PENDING_QUESTION_TIMEOUT_S": -1,
    "TERMINAL_SANDBOX": "docker",
    "TERMINAL_NETWORK": "yes",
    "REQUIRE_PERMISSION": "yes",
    "TERMINAL_MAX_PROCESSES": 0,
    "TERMINAL_MAX_MEMORY_BYTES": -1,
    "TERMINAL_MAX_FILE_BYTES": "64M",
    "TERMINAL_SCRATCH_DIR": "relative/dir",
    "REDIS_URL": "http://cache:6379/0",
    "WEBSOCKET_PATH": "/api/ws",
    "LIVE_SAMPLE_INTERVAL_S": 0,
    "LIVE_SAMPLE_WINDOW_S": -1,
    "METRICS_ALLOW": "10.0.0.0/33",
}


def test_every_option_has_a_bad_value_to_check():
    """Tests that the table below covers every option of conf.DEFAULTS, so an option added
    without a check is noticed."""
    assert set(BAD_VALUES) == set(DEFAULTS)


@pytest.mark.parametrize(("name", "value"), BAD_VALUES.items(), ids=list(BAD_VALUES))
def test_a_bad_value_of_any_option_is_an_error_naming_it(settings, name, value):
    """Tests that each option's check refuses a value of the wrong type or range, with an
    error (E00x) that names the option."""
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, name: value}
    errors = check_gateway_settings(None)
    assert errors and all(error.id.startswith("gateway_app.E") for error in errors)
    assert any(name in error.msg for error in errors)


#: For each rule of an option kind (gateway_app.conf.kinds), an option of that kind, a value
#: the rule refuses, and the rule's check id.
KIND_RULES = [
    ("REAP_GRACE_S", -1, "gateway_app.E001"),
    ("MAX_LIVE_SESSIONS", 0, "gateway_app.E002"),
    ("AGENT_TIMEOUT_S", 0, "gateway_app.E004"),
    ("WORKER_NAME", 7, "gateway_app.E005"),
    ("SKIN", "dark", "gateway_app.E007"),
    ("TERMINAL_SANDBOX", "docker", "gateway_app.E011"),
    ("REQUIRE_PERMISSION", "yes", "gateway_app.E012"),
    ("TERMINAL_SCRATCH_DIR", "relative/dir", "gateway_app.E013"),
    ("WEBSOCKET_PATH", "/api/ws", "gateway_app.E041"),
    ("REDIS_URL", "http://cache:6379/0", "gateway_app.E042"),
    ("SLASH_COMMANDS", "tests.extensions.slash_commands", "gateway_app.E055"),
    ("METRICS_ALLOW", "10.0.0.0/33", "gateway_app.E070"),
    ("MAX_STORED_SESSIONS_PER_USER", -1, "gateway_app.E080"),
]


@pytest.mark.parametrize(("name", "value", "check_id"), KIND_RULES, ids=[r[2] for r in KIND_RULES])
def test_each_kind_rule_reports_its_own_check_id(settings, name, value, check_id):
    """Tests that a value failing a kind's rule is reported under that rule's id, and only
    under it, so each documented id fires on the configuration it guards."""
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, name: value}
    assert ids(check_gateway_settings(None)) == [check_id]


def test_a_heartbeat_of_zero_is_an_error(settings):
    """Tests that HEARTBEAT_S = 0 (asyncio.sleep(0): a busy loop on Redis) fails the check."""
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "HEARTBEAT_S": 0}
    assert ids(check_gateway_settings(None)) == ["gateway_app.E004"]


def test_a_heartbeat_over_half_the_dead_after_time_is_an_error(settings):
    """Tests that a host must beat at least twice per HOST_DEAD_AFTER_S."""
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "HEARTBEAT_S": 2, "HOST_DEAD_AFTER_S": 3}
    (error,) = check_gateway_settings(None)
    assert error.id == "gateway_app.E006" and "HEARTBEAT_S" in error.msg


def test_a_heartbeat_of_exactly_half_the_dead_after_time_passes(settings):
    """Tests that HEARTBEAT_S * 2 == HOST_DEAD_AFTER_S is allowed."""
    settings.HERMES_GATEWAY = {
        **settings.HERMES_GATEWAY,
        "HEARTBEAT_S": 1.5,
        "HOST_DEAD_AFTER_S": 3,
    }
    assert check_gateway_settings(None) == []


def test_a_sample_window_below_the_interval_is_an_error(settings):
    """Tests that a live-page window shorter than one sample interval (a ring of one sample,
    charts with no line) fails the check."""
    settings.HERMES_GATEWAY = {
        **settings.HERMES_GATEWAY,
        "LIVE_SAMPLE_INTERVAL_S": 10,
        "LIVE_SAMPLE_WINDOW_S": 5,
    }
    (error,) = check_gateway_settings(None)
    assert error.id == "gateway_app.E075" and "LIVE_SAMPLE_WINDOW_S" in error.msg


def test_a_sample_ring_of_over_20000_samples_is_a_warning(settings):
    """Tests that an interval so short for its window that each worker would keep more than
    20 000 samples (and send them all to each live page poll) is a warning."""
    settings.HERMES_GATEWAY = {
        **settings.HERMES_GATEWAY,
        "LIVE_SAMPLE_INTERVAL_S": 0.01,
        "LIVE_SAMPLE_WINDOW_S": 900,
    }
    (warning,) = check_gateway_settings(None)
    assert warning.id == "gateway_app.W075" and "90000" in warning.msg


@pytest.mark.parametrize("url", ["api.openai.com/v1", "ftp://x/v1", "http://[::1"])
def test_the_openai_agent_needs_an_http_base_url(settings, url):
    """Tests that with AGENT=openai, OPENAI_BASE_URL must be an http(s) URL."""
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "AGENT": "openai", "OPENAI_BASE_URL": url}
    assert ids(check_gateway_settings(None)) == ["gateway_app.E008"]


def test_the_openai_agent_needs_a_model(settings):
    """Tests that with AGENT=openai, MODEL must not be empty."""
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "AGENT": "openai", "MODEL": " "}
    assert ids(check_gateway_settings(None)) == ["gateway_app.E009"]


### Environment variables (hermes_site/settings.py) ###


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HERMES_TUI_WS_ORPHAN_REAP_GRACE_S", "abc"),
        ("HERMES_TUI_SESSION_TTL_S", "6h"),
        ("HERMES_TUI_MAX_LIVE_SESSIONS", "2.5"),
        ("HERMES_GATEWAY_OPTIONS", '{"RATE_LIMIT_PER_S": 50,}'),
        ("HERMES_GATEWAY_OPTIONS", "[1, 2]"),
    ],
)
def test_a_bad_environment_value_is_improperly_configured_naming_it(monkeypatch, variable, value):
    """Tests that a malformed environment variable stops settings with ImproperlyConfigured
    naming the variable and its value, not a bare ValueError."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ImproperlyConfigured) as raised:
        runpy.run_path(str(SETTINGS_FILE))
    assert variable in str(raised.value) and repr(value) in str(raised.value)


def test_good_environment_values_are_read(monkeypatch):
    """Tests that well-formed environment values still reach HERMES_GATEWAY."""
    monkeypatch.setenv("HERMES_TUI_WS_ORPHAN_REAP_GRACE_S", "2.5")
    monkeypatch.setenv("HERMES_GATEWAY_OPTIONS", '{"RATE_LIMIT_PER_S": 50}')
    gateway = runpy.run_path(str(SETTINGS_FILE))["HERMES_GATEWAY"]
    assert gateway["REAP_GRACE_S"] == 2.5 and gateway["RATE_LIMIT_PER_S"] == 50


def test_a_session_engine_without_server_sessions_is_a_warning(settings):
    """Tests that signed-cookie sessions, which a logout cannot end on the server (so it
    cannot close that browser's sockets), are reported; the default engine is not."""
    assert check_session_engine(None) == []
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
    assert ids(check_session_engine(None)) == ["gateway_app.W030"]


@pytest.mark.parametrize(
    "entry", ["https://chat.example.com/", "chat.example.com", "ftp://example.com", "https://*"]
)
def test_a_trusted_origin_no_browser_can_send_is_a_warning(settings, entry):
    """Tests that a CSRF_TRUSTED_ORIGINS entry with a path or a wrong scheme is reported."""
    settings.CSRF_TRUSTED_ORIGINS = [entry]
    assert ids(check_trusted_origins(None)) == ["gateway_app.W025"]


def test_well_formed_trusted_origins_pass(settings):
    """Tests that exact and wildcard http(s) origins raise nothing."""
    settings.CSRF_TRUSTED_ORIGINS = ["https://chat.example.com:8443", "https://*.example.com"]
    assert check_trusted_origins(None) == []


REDIS_LAYER_CONFIG = {"hosts": ["redis://127.0.0.1:6379/0"], "expiry": 60}


def test_the_projects_redis_layer_signs_its_messages(settings):
    """Tests that the signed layer hermes_site.settings configures for REDIS_URL passes."""
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "gateway_app.layers.ResilientRedisChannelLayer",
            "CONFIG": REDIS_LAYER_CONFIG,
        }
    }
    assert check_layer_signing(None) == []


def test_the_plain_channels_redis_layer_is_a_warning(settings):
    """Tests that CHANNEL_LAYERS set to the plain channels-redis layer warns that
    inter-worker messages are not authenticated."""
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": REDIS_LAYER_CONFIG,
        }
    }
    assert [m.id for m in check_layer_signing(None)] == ["gateway_app.W015"]


def test_the_projects_layer_with_another_serializer_is_a_warning(settings):
    """Tests that the project's layer told to use the unsigned msgpack format warns."""
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "gateway_app.layers.ResilientRedisChannelLayer",
            "CONFIG": {**REDIS_LAYER_CONFIG, "serializer_format": "msgpack"},
        }
    }
    assert [m.id for m in check_layer_signing(None)] == ["gateway_app.W015"]


def test_the_channels_redis_pubsub_layer_is_a_warning(settings):
    """Tests that the pub/sub layer of channels-redis (unsigned msgpack) warns too."""
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": REDIS_LAYER_CONFIG,
        }
    }
    assert [m.id for m in check_layer_signing(None)] == ["gateway_app.W015"]


def test_the_in_memory_layer_of_a_single_worker_passes(settings):
    """Tests that one worker without Redis (nothing travels between workers) passes."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    assert check_layer_signing(None) == []


def test_missing_bubblewrap_is_an_error(settings, monkeypatch):
    """Tests that the default sandbox without a working bwrap is E010 (the tool is off)."""
    monkeypatch.setattr(sandbox, "BWRAP_PATH", "/nonexistent/bwrap")
    errors = check_gateway_settings(None)
    assert ids(errors) == ["gateway_app.E010"]
    assert "/nonexistent/bwrap" in errors[0].msg


def test_no_sandbox_is_a_warning(settings):
    """Tests that TERMINAL_SANDBOX = "none" is reported as W010 whenever checks run."""
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "TERMINAL_SANDBOX": "none"}
    assert ids(check_gateway_settings(None)) == ["gateway_app.W010"]


@pytest.mark.parametrize(
    ("name", "value", "check_id"),
    [
        ("TERMINAL_SANDBOX", "docker", "gateway_app.E011"),
        ("TERMINAL_NETWORK", 1, "gateway_app.E012"),
        ("TERMINAL_SCRATCH_DIR", "scratch", "gateway_app.E013"),
    ],
)
def test_bad_terminal_options_are_errors(settings, name, value, check_id):
    """Tests that each terminal option refuses a wrong value with its own id."""
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, name: value}
    assert ids(check_gateway_settings(None)) == [check_id]


@pytest.mark.parametrize("path", ["/api/ws", "api//ws", "api/ws/", "api/ws?x=1", "api/../ws", ""])
def test_a_websocket_path_that_is_not_a_relative_url_path_is_an_error(settings, path):
    """Tests that WEBSOCKET_PATH must be a relative path of URL-safe segments (no leading
    slash, no empty or dot segments, no query)."""
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "WEBSOCKET_PATH": path}
    assert ids(check_gateway_settings(None)) == ["gateway_app.E041"]


def test_a_nested_websocket_path_passes(settings):
    """Tests that a path of several URL-safe segments is accepted."""
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "WEBSOCKET_PATH": "hermes/v1.0/ws_~x-y"}
    assert check_gateway_settings(None) == []


@pytest.mark.parametrize("url", ["http://cache:6379/0", "cache:6379", "redis"])
def test_a_redis_url_that_is_not_a_redis_url_is_an_error(settings, url):
    """Tests that REDIS_URL must be a redis://, rediss:// or unix:// URL when set."""
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "REDIS_URL": url}
    assert ids(check_gateway_settings(None)) == ["gateway_app.E042"]


### The channel layer and the registry ###


def test_the_default_channel_layer_passes(settings):
    """Tests that the shipped (in-memory) layer raises nothing."""
    assert check_channel_layer(None) == []


@pytest.mark.parametrize("channel_layers", [None, {}, {"other": REDIS_LAYER_CONFIG}])
def test_no_default_channel_layer_is_an_error(settings, channel_layers):
    """Tests that CHANNEL_LAYERS missing, empty or without "default" (which the gateway's
    events, sockets and hosts all need) fails the check, naming the setting."""
    if channel_layers is None:
        del settings.CHANNEL_LAYERS
    else:
        settings.CHANNEL_LAYERS = channel_layers
    (error,) = check_channel_layer(None)
    assert error.id == "gateway_app.E040" and "CHANNEL_LAYERS" in error.msg


def test_a_shared_registry_beside_an_in_memory_layer_is_a_warning(settings):
    """Tests that REDIS_URL with a layer that does not reach other workers warns: calls
    forwarded to another worker's sessions would never arrive."""
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "REDIS_URL": "redis://r:6379/0"}
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    assert ids(check_channel_layer(None)) == ["gateway_app.W040"]


def test_a_redis_layer_whose_registry_cannot_be_derived_is_an_error(settings):
    """Tests that a Redis layer whose first host gives no URL (credentials beside the
    address, sentinels), without REDIS_URL, is an error naming the option."""
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "gateway_app.layers.ResilientRedisChannelLayer",
            "CONFIG": {"hosts": [{"address": "redis://r:6379/0", "password": "pw"}]},
        }
    }
    (error,) = check_channel_layer(None)
    assert error.id == "gateway_app.E043" and "REDIS_URL" in error.msg


def test_a_redis_layer_with_a_derivable_host_passes(settings):
    """Tests that the project's Redis layer, as hermes_site configures it, raises nothing."""
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "gateway_app.layers.ResilientRedisChannelLayer",
            "CONFIG": {"hosts": [{"address": "redis://r:6379/0", "socket_timeout": 15}]},
        }
    }
    assert check_channel_layer(None) == []


def test_an_explicit_redis_url_beside_an_underivable_layer_passes(settings):
    """Tests that setting REDIS_URL answers E043."""
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "REDIS_URL": "redis://:pw@r:6379/0"}
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "gateway_app.layers.ResilientRedisChannelLayer",
            "CONFIG": {"hosts": [{"address": "redis://r:6379/0", "password": "pw"}]},
        }
    }
    assert check_channel_layer(None) == []


def test_a_prompt_limit_above_the_message_limit_is_an_error(settings):
    """Tests that MAX_PROMPT_CHARS above MAX_MESSAGE_CHARS is E081: an accepted prompt could
    not be stored whole."""
    settings.HERMES_GATEWAY = {
        **settings.HERMES_GATEWAY,
        "MAX_PROMPT_CHARS": 5000,
        "MAX_MESSAGE_CHARS": 4000,
        "HISTORY_BYTES": 10**9,
    }
    (error,) = check_gateway_settings(None)
    assert error.id == "gateway_app.E081" and "MAX_PROMPT_CHARS" in error.msg


def test_a_prompt_limit_equal_to_the_message_limit_passes(settings):
    """Tests that MAX_PROMPT_CHARS equal to MAX_MESSAGE_CHARS raises nothing."""
    settings.HERMES_GATEWAY = {
        **settings.HERMES_GATEWAY,
        "MAX_PROMPT_CHARS": 4000,
        "MAX_MESSAGE_CHARS": 4000,
    }
    assert check_gateway_settings(None) == []


def test_a_history_budget_below_one_largest_message_is_a_warning(settings):
    """Tests that HISTORY_BYTES smaller than one message of MAX_MESSAGE_CHARS four-byte
    characters is W081: such a message alone would be the agent's whole context."""
    settings.HERMES_GATEWAY = {
        **settings.HERMES_GATEWAY,
        "MAX_PROMPT_CHARS": 1000,
        "MAX_MESSAGE_CHARS": 1000,
        "HISTORY_BYTES": 3999,
    }
    assert ids(check_gateway_settings(None)) == ["gateway_app.W081"]


### The chat page's login URL ###


def test_a_login_url_nothing_routes_is_a_warning(settings):
    """Tests that Django's default LOGIN_URL, routed by nothing in a project that routes the
    chat page, warns naming LOGIN_URL: each anonymous visitor would land on a 404."""
    settings.ROOT_URLCONF = "tests.dashboard.urls_without_admin"
    settings.LOGIN_URL = "/accounts/login/"
    (warning,) = check_login_url(None)
    assert warning.id == "gateway_app.W044" and "LOGIN_URL" in warning.msg


def test_a_login_url_name_that_does_not_reverse_is_a_warning(settings):
    """Tests that a URL name for LOGIN_URL, such as the admin's login in a project that does
    not route the admin, warns naming it."""
    settings.ROOT_URLCONF = "tests.dashboard.urls_without_admin"
    settings.LOGIN_URL = "admin:login"
    (warning,) = check_login_url(None)
    assert warning.id == "gateway_app.W044" and "admin:login" in warning.msg


def test_a_login_url_the_project_routes_passes(settings):
    """Tests that hermes_site's LOGIN_URL, the admin's login it routes, raises nothing."""
    assert settings.LOGIN_URL == "admin:login"
    assert check_login_url(None) == []


def test_a_login_url_on_another_site_passes(settings):
    """Tests that an absolute URL (a single sign-on server, say) is not checked."""
    settings.ROOT_URLCONF = "tests.dashboard.urls_without_admin"
    settings.LOGIN_URL = "https://sso.example.com/login"
    assert check_login_url(None) == []


def test_a_login_url_is_not_checked_without_the_chat_page(settings):
    """Tests that a project routing no chat page (only the WebSocket) gets no warning."""
    settings.ROOT_URLCONF = "tests.dashboard.urls_without_chat"
    settings.LOGIN_URL = "/accounts/login/"
    assert check_login_url(None) == []
