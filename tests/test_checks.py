"""``manage.py check`` catches bad gateway settings before the server starts."""

from gateway_app.checks import check_gateway_settings


def ids(settings_errors):
    return sorted(error.id for error in settings_errors)


def test_the_defaults_pass(settings):
    """Tests that the shipped settings raise nothing."""
    assert check_gateway_settings(None) == []


def test_an_unknown_option_is_a_warning(settings):
    """Tests that a misspelt option is reported instead of silently ignored."""
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, "REAP_GRACE": 5}
    assert ids(check_gateway_settings(None)) == ["gateway_app.W001"]


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
