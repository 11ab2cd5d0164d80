"""
The built-in slash-command catalog and skins. Pure data with no Django imports, because both
the gateway (for ``commands.catalog`` / ``complete.slash``) and the slash worker child import
it; the commands of ``SLASH_COMMANDS`` modules join them in :mod:`.registry`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class CommandSpec:
    """One slash command as shown to clients: its name (with the slash), what it does, usage."""

    name: str
    description: str
    usage: str
    #: The worker reads the transcript (``context.messages``) for it: only then is it sent.
    reads_transcript: bool = False


COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("/help", "List the available slash commands.", "/help"),
    CommandSpec("/title", "Set the session title.", "/title <text>"),
    CommandSpec(
        "/status",
        "Show the session's id, title, status and worker.",
        "/status",
        reads_transcript=True,
    ),
    CommandSpec("/history", "Print the session transcript.", "/history", reads_transcript=True),
    CommandSpec("/clear", "Clear the session transcript.", "/clear"),
    CommandSpec("/version", "Show the gateway and Python versions.", "/version"),
    CommandSpec("/skin", "List skins, or switch to a named skin.", "/skin [name]"),
)

COMMAND_NAMES: frozenset[str] = frozenset(spec.name for spec in COMMANDS)
TRANSCRIPT_COMMANDS: frozenset[str] = frozenset(
    spec.name for spec in COMMANDS if spec.reads_transcript
)

#: Named presentation skins; ``/skin <name>`` switches between them.
SKINS: dict[str, dict[str, str]] = {
    "default": {"name": "default", "accent": "#5b8def", "banner": "Hermes gateway"},
    "midnight": {"name": "midnight", "accent": "#8a7dff", "banner": "Hermes gateway · midnight"},
    "solarized": {"name": "solarized", "accent": "#b58900", "banner": "Hermes gateway · solarized"},
    "mono": {"name": "mono", "accent": "#999999", "banner": "Hermes gateway"},
}


def catalog(specs: Iterable[CommandSpec] = COMMANDS) -> list[dict[str, str]]:
    """Return the commands as plain dicts, ready to serialize for ``commands.catalog``."""
    return [
        {"name": spec.name, "description": spec.description, "usage": spec.usage} for spec in specs
    ]


def command_name(command: str) -> str:
    """The lower-cased ``/name`` of a command line, as the slash worker parses it."""
    return command.strip().partition(" ")[0].lower()


def complete(text: str, specs: Iterable[CommandSpec] = COMMANDS) -> list[str]:
    """Return the sorted command names starting with ``text``; ``[]`` unless it starts with /."""
    if not text.startswith("/"):
        return []
    return sorted(spec.name for spec in specs if spec.name.startswith(text))
