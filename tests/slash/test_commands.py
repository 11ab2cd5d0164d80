"""Tests for the pure slash-command catalog."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from gateway_app.slash import commands as slash_commands
from gateway_app.slash.commands import COMMANDS, SKINS, CommandSpec, catalog, complete


def test_catalog_lists_every_command_as_plain_dicts() -> None:
    """Tests that catalog() returns one name/description/usage dict per command, in order."""
    entries = catalog()
    assert [entry["name"] for entry in entries] == [spec.name for spec in COMMANDS]
    for entry in entries:
        assert set(entry) == {"name", "description", "usage"}
        assert entry["name"].startswith("/")
        assert entry["usage"].startswith(entry["name"])
        assert entry["description"]


def test_catalog_contains_the_documented_commands() -> None:
    """Tests that the catalog holds exactly the seven documented slash commands."""
    names = {entry["name"] for entry in catalog()}
    assert names == {"/help", "/title", "/status", "/history", "/clear", "/version", "/skin"}


def test_command_spec_is_frozen() -> None:
    """Tests that a CommandSpec cannot be mutated after creation."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        COMMANDS[0].name = "/other"  # type: ignore[misc]
    assert isinstance(COMMANDS[0], CommandSpec)


def test_complete_returns_sorted_prefix_matches() -> None:
    """Tests that complete() returns the sorted command names starting with the text."""
    assert complete("/h") == ["/help", "/history"]
    assert complete("/st") == ["/status"]
    assert complete("/skin") == ["/skin"]


def test_complete_slash_alone_returns_every_command() -> None:
    """Tests that completing "/" returns all command names, sorted."""
    assert complete("/") == sorted(spec.name for spec in COMMANDS)


def test_complete_without_slash_or_match_returns_nothing() -> None:
    """Tests that text not starting with "/" or matching nothing completes to []."""
    assert complete("help") == []
    assert complete("") == []
    assert complete("/zzz") == []


def test_skins_are_named_small_dicts() -> None:
    """Tests that every skin carries its own name, an accent colour and a banner."""
    assert {"default", "midnight", "solarized", "mono"} <= set(SKINS)
    for name, skin in SKINS.items():
        assert skin["name"] == name
        assert skin["accent"].startswith("#")
        assert skin["banner"]


def test_module_imports_no_django() -> None:
    """Tests that the catalog module stays free of Django imports (the child imports it)."""
    tree = ast.parse(Path(slash_commands.__file__).read_text(encoding="utf-8"))
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not any(name.split(".")[0] == "django" for name in imported)
