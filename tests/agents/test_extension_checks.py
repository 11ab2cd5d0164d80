"""The system checks of the extension settings: AGENT (E003, E050-E053) and TOOLS (E054),
each firing on the configuration it guards; the build refuses the same configurations."""

from __future__ import annotations

import pytest

from gateway_app.agents import build_agent
from gateway_app.agents.errors import ExtensionError
from gateway_app.agents.tools import load_tools
from gateway_app.checks import check_gateway_settings

GREETING = "tests.extensions.agents.GreetingAgent"


def errors_for(settings, **options) -> list[tuple[str, str]]:
    settings.HERMES_GATEWAY = {**settings.HERMES_GATEWAY, **options}
    return [(e.id, e.msg) for e in check_gateway_settings(None)]


def test_a_custom_backend_and_custom_tools_pass(settings):
    """Tests that an importable Agent subclass with fitting OPTIONS, and valid tools, pass."""
    assert (
        errors_for(
            settings,
            AGENT={"BACKEND": GREETING, "OPTIONS": {"greeting": "hi"}},
            TOOLS=["tests.extensions.tools.ShoutTool", "tests.extensions.tools.QuietTool"],
        )
        == []
    )


@pytest.mark.parametrize(
    ("agent", "check_id"),
    [
        ("gpt", "gateway_app.E003"),
        ({"BACKEND": "gpt"}, "gateway_app.E003"),
        ("tests.extensions.missing.Agent", "gateway_app.E050"),
        ({"BACKEND": "tests.extensions.agents.Missing"}, "gateway_app.E050"),
        ("tests.extensions.agents.NotAnAgent", "gateway_app.E051"),
        ({"BACKEND": GREETING, "OPTIONS": ["greeting"]}, "gateway_app.E052"),
        ({"BACKEND": GREETING, "OPTION": {}}, "gateway_app.E052"),
        ({"OPTIONS": {}}, "gateway_app.E052"),
        (42, "gateway_app.E052"),
        ({"BACKEND": GREETING, "OPTIONS": {"colour": "red"}}, "gateway_app.E053"),
        ({"BACKEND": "openai", "OPTIONS": {"temperature": 0}}, "gateway_app.E053"),
    ],
    ids=[
        "unknown-name",
        "unknown-backend-name",
        "module-missing",
        "class-missing",
        "not-an-agent",
        "options-not-a-dict",
        "unknown-key",
        "no-backend",
        "not-a-name-or-dict",
        "constructor-rejects-options",
        "openai-rejects-options",
    ],
)
def test_a_bad_agent_setting_is_an_error_naming_it(settings, agent, check_id):
    """Tests that each bad AGENT gets its own error id, naming AGENT, and that building the
    agent from it raises the same error."""
    ((error_id, message),) = errors_for(settings, AGENT=agent)
    assert error_id == check_id and "AGENT" in message
    with pytest.raises(ExtensionError) as raised:
        build_agent(agent)
    assert raised.value.check_id == check_id


@pytest.mark.parametrize(
    ("tools", "detail"),
    [
        ("tests.extensions.tools.ShoutTool", "must be a list"),
        (["tests.extensions.tools.Missing"], "cannot import"),
        (["tests.extensions.tools.NotATool"], "not a subclass"),
        (
            [
                "gateway_app.agents.tools.terminal.TerminalTool",
                "tests.extensions.tools.SecondTerminal",
            ],
            "'terminal' is already taken",
        ),
        (["tests.extensions.tools.ClarifyTool"], "'clarify' is already taken"),
        (["tests.extensions.tools.StringSchemaTool"], "JSON Schema object"),
    ],
    ids=["not-a-list", "not-importable", "not-a-tool", "duplicate", "reserved", "bad-schema"],
)
def test_a_bad_tools_setting_is_e054(settings, tools, detail):
    """Tests that TOOLS must list importable Tool classes of unique names whose parameters
    are a JSON Schema object, and that loading them refuses the same lists."""
    ((error_id, message),) = errors_for(settings, TOOLS=tools)
    assert error_id == "gateway_app.E054" and "TOOLS" in message and detail in message
    with pytest.raises(ExtensionError):
        load_tools(tools)


def test_the_openai_settings_are_checked_for_openai_as_backend(settings):
    """Tests that the openai backend named as BACKEND still gets its own checks (E009)."""
    errors = errors_for(settings, AGENT={"BACKEND": "openai"}, MODEL=" ")
    assert [error_id for error_id, _ in errors] == ["gateway_app.E009"]
