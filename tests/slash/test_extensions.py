"""Third-party slash commands: the ``@command`` registry, the SLASH_COMMANDS setting, its
system checks, and the commands running in the real slash worker over the gateway."""

from __future__ import annotations

import pytest

from gateway_app.checks import check_gateway_settings, check_slash_commands
from gateway_app.slash import command
from gateway_app.slash.commands import COMMANDS
from gateway_app.slash.registry import build_table

PLUGIN = "tests.extensions.slash_commands"
CLASHING = "tests.extensions.clashing_commands"
BROKEN = "tests.extensions.broken_commands"


@pytest.fixture
def plugins(limits):
    limits(SLASH_COMMANDS=[PLUGIN])


def ids(errors) -> list[str]:
    return sorted(error.id for error in errors)


### The registry ###


def test_a_command_name_is_given_its_slash_and_lower_case() -> None:
    """Tests that @command accepts a name with or without its slash, in any case."""
    table = build_table([PLUGIN])
    names = [spec.name for spec in table.specs]
    assert "/weather" in names and "/whoami" in names


@pytest.mark.parametrize("name", ["", "/", "/two words", "/semi;colon", "/" + "x" * 40])
def test_an_invalid_command_name_is_refused_at_registration(name: str) -> None:
    """Tests that a name that clients could not type as one word raises at import time."""
    with pytest.raises(ValueError):
        command(name=name, description="d")


def test_a_usage_that_names_another_command_is_refused() -> None:
    """Tests that the usage line must start with the command's own name."""
    with pytest.raises(ValueError, match="usage"):
        command(name="alpha", description="d", usage="/beta <x>")


def test_registered_commands_follow_the_builtins_in_the_table() -> None:
    """Tests that the table lists the built-ins first, then the module's commands in order."""
    table = build_table([PLUGIN])
    assert table.specs[: len(COMMANDS)] == COMMANDS
    added = [spec.name for spec in table.specs[len(COMMANDS) :]]
    assert added == ["/weather", "/whoami", "/count", "/rename", "/badskin", "/noisy"]
    assert table.problems == ()


def test_only_a_command_that_asks_for_it_reads_the_transcript() -> None:
    """Tests that reads_transcript marks just the commands registered with it."""
    table = build_table([PLUGIN])
    assert table.reads_transcript("/count")
    assert not table.reads_transcript("/weather")
    assert table.reads_transcript("/history")


def test_a_module_not_listed_contributes_nothing() -> None:
    """Tests that an imported command module's commands are offered only while it is listed."""
    build_table([PLUGIN])
    assert "/weather" not in [spec.name for spec in build_table([]).specs]


def test_a_clash_keeps_the_command_defined_first() -> None:
    """Tests that a built-in's name or another module's stays with its first owner."""
    table = build_table([PLUGIN, CLASHING])
    names = [spec.name for spec in table.specs]
    assert names.count("/help") == 1 and names.count("/weather") == 1
    assert table.handlers["/weather"].__module__ == PLUGIN
    assert [(p.kind, p.module) for p in table.problems] == [
        ("builtin", CLASHING),
        ("duplicate", CLASHING),
    ]


def test_a_module_that_fails_to_import_is_recorded_not_raised() -> None:
    """Tests that a broken module leaves the other modules' commands working."""
    table = build_table([BROKEN, PLUGIN])
    assert "/weather" in [spec.name for spec in table.specs]
    ((kind, module, detail),) = [(p.kind, p.module, p.detail) for p in table.problems]
    assert (kind, module) == ("import", BROKEN) and "not installed" in detail


### System checks ###


def test_the_setting_must_be_a_list_of_module_paths(limits) -> None:
    """Tests that SLASH_COMMANDS given as one string (or a path with slashes) is E055."""
    limits(SLASH_COMMANDS="tests.extensions.slash_commands")
    assert ids(check_gateway_settings(None)) == ["gateway_app.E055"]
    limits(SLASH_COMMANDS=["tests/extensions/slash_commands.py"])
    assert ids(check_gateway_settings(None)) == ["gateway_app.E055"]


def test_configured_command_modules_pass_the_checks(plugins) -> None:
    """Tests that a module that imports and clashes with nothing raises no error."""
    assert check_slash_commands(None) == []
    assert check_gateway_settings(None) == []


def test_a_module_that_does_not_import_is_a_check_error(limits) -> None:
    """Tests that a SLASH_COMMANDS module failing to import is E056, naming it."""
    limits(SLASH_COMMANDS=[BROKEN])
    (error,) = check_slash_commands(None)
    assert error.id == "gateway_app.E056" and BROKEN in error.msg


def test_a_command_named_like_a_builtin_or_another_modules_is_a_check_error(limits) -> None:
    """Tests that a clash with a built-in is E057 and one with another module's is E058."""
    limits(SLASH_COMMANDS=[PLUGIN, CLASHING])
    errors = check_slash_commands(None)
    assert ids(errors) == ["gateway_app.E057", "gateway_app.E058"]
    assert all(CLASHING in error.msg for error in errors)


### Over the gateway, in the real worker ###

gateway_db = pytest.mark.django_db(transaction=True)


@gateway_db
async def test_the_catalog_and_completion_include_registered_commands(
    plugins, connect, alice
) -> None:
    """Tests that commands.catalog lists a module's commands and complete.slash offers them."""
    rpc = await connect(alice)
    entries = (await rpc.call("commands.catalog"))["commands"]
    assert {
        "name": "/weather",
        "description": "Tell the weather of a city.",
        "usage": "/weather <city>",
    } in entries
    assert (await rpc.call("complete.slash", {"text": "/we"}))["completions"] == ["/weather"]


@gateway_db
async def test_the_catalog_holds_only_builtins_without_the_setting(connect, alice) -> None:
    """Tests that nothing is added while SLASH_COMMANDS is empty."""
    rpc = await connect(alice)
    names = [entry["name"] for entry in (await rpc.call("commands.catalog"))["commands"]]
    assert names == [spec.name for spec in COMMANDS]


@gateway_db
async def test_a_registered_command_runs_in_the_slash_worker(plugins, connect, alice) -> None:
    """Tests that slash.exec runs a module's command with its arguments."""
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    result = await rpc.call("slash.exec", {"session_id": sid, "command": "/weather Paris"})
    assert result == {"output": "Sunny in Paris."}


@gateway_db
async def test_a_command_gets_the_session_id_and_user(plugins, connect, alice) -> None:
    """Tests that the context holds the session id and the user's id and username."""
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    output = (await rpc.call("slash.exec", {"session_id": sid, "command": "/whoami"}))["output"]
    assert output == f"alice (id {alice.pk}) in {sid}, skin default"


@gateway_db
async def test_a_command_that_asks_for_it_gets_the_transcript(plugins, connect, alice) -> None:
    """Tests that a reads_transcript command is sent the session's messages."""
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    await rpc.turn(sid, "hello there")
    output = (await rpc.call("slash.exec", {"session_id": sid, "command": "/count"}))["output"]
    assert output == "2 messages"


@gateway_db
async def test_help_lists_registered_commands(plugins, connect, alice) -> None:
    """Tests that /help in the worker includes the module's commands."""
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    output = (await rpc.call("slash.exec", {"session_id": sid, "command": "/help"}))["output"]
    assert "/weather <city>" in output and "Tell the weather of a city." in output


@gateway_db
async def test_a_registered_commands_effects_are_applied(plugins, connect, alice) -> None:
    """Tests that a title effect returned by a module's command renames the session."""
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    await rpc.call("slash.exec", {"session_id": sid, "command": "/rename quiet"})
    assert (await rpc.call("session.list"))["sessions"][0]["title"] == "QUIET"


@gateway_db
async def test_an_invalid_effect_of_a_registered_command_is_an_error(
    plugins, connect, alice
) -> None:
    """Tests that a module's command cannot set a skin that does not exist."""
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    error = await rpc.error("slash.exec", {"session_id": sid, "command": "/badskin"})
    assert error["code"] == -32603 and "invalid effect" in error["message"]


@gateway_db
async def test_what_a_command_prints_does_not_reach_the_reply_channel(
    plugins, connect, alice
) -> None:
    """Tests that a command's print() goes to stderr, so the worker's replies stay intact."""
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    result = await rpc.call("slash.exec", {"session_id": sid, "command": "/noisy"})
    assert result == {"output": "done"}
    assert (await rpc.call("slash.exec", {"session_id": sid, "command": "/noisy"})) == result


@gateway_db
async def test_a_command_module_on_the_gateways_import_path_runs_in_the_worker(
    tmp_path, monkeypatch, limits, connect, alice
) -> None:
    """Tests that a module the gateway imports from a directory of its own import path (a
    host project's app beside manage.py) is imported by the slash worker too."""
    (tmp_path / "hostapp_commands.py").write_text(
        "from gateway_app.slash import command\n\n\n"
        "@command(name='hostapp', description='A host app command.')\n"
        "def hostapp(ctx, args):\n    return 'from the host app'\n"
    )
    monkeypatch.syspath_prepend(tmp_path)
    limits(SLASH_COMMANDS=["hostapp_commands"])
    rpc = await connect(alice)
    sid = (await rpc.call("session.create"))["session_id"]
    result = await rpc.call("slash.exec", {"session_id": sid, "command": "/hostapp"})
    assert result == {"output": "from the host app"}
