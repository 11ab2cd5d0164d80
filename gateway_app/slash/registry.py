"""
Pluggable slash commands: the public ``@command`` decorator and the table of the commands
that the modules named in ``HERMES_GATEWAY["SLASH_COMMANDS"]`` register. Standard library only,
because the slash worker (no Django) and the gateway both build the same table from it.

A command module may use the standard library, its own imports and the context it is given
(session id, user, title, skin, status, version, and the transcript when it asks for it); it
runs in the slash worker, where Django, the ORM and the gateway's settings are not available.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .commands import COMMANDS, CommandSpec

#: What a handler returns: the output, or the output and its effects (``title``, ``clear``,
#: ``skin``, applied by the session host as for the built-ins).
Output = str | tuple[str, dict[str, Any]]
#: A command handler: ``handler(ctx, args)`` with the worker's context and the text after the
#: command name.
CommandHandler = Callable[[Any, str], Output]

_NAME = re.compile(r"/[a-z][a-z0-9_-]{0,31}")


@dataclass(frozen=True)
class Command:
    """A command a module registered: what clients see, its handler and where it came from."""

    spec: CommandSpec
    handler: CommandHandler
    module: str


@dataclass(frozen=True)
class Problem:
    """Why the table is not what the settings ask for; a system check reports each one."""

    #: ``"import"`` (the module failed), ``"builtin"`` (a built-in's name) or ``"duplicate"``.
    kind: str
    module: str
    detail: str


@dataclass(frozen=True)
class Table:
    """The effective commands: built-ins first, then each module's in registration order."""

    specs: tuple[CommandSpec, ...]
    #: The registered commands' handlers by ``/name`` (the built-ins live in the worker).
    handlers: dict[str, CommandHandler]
    problems: tuple[Problem, ...] = ()

    def reads_transcript(self, name: str) -> bool:
        """Whether the command ``name`` is sent the transcript (``ctx.messages``)."""
        return any(spec.name == name and spec.reads_transcript for spec in self.specs)


BUILTIN_TABLE = Table(COMMANDS, {})


#: Commands by the module that registered them, in registration order.
_by_module: dict[str, list[Command]] = {}


def command_slug(name: str) -> str:
    """The ``/name`` form of a command name given with or without its slash."""
    name = name.strip().lower()
    return name if name.startswith("/") else f"/{name}"


def command(
    *, name: str, description: str, usage: str = "", reads_transcript: bool = False
) -> Callable[[CommandHandler], CommandHandler]:
    """Register ``handler(ctx, args) -> str | (str, effects)`` as the slash command ``name``.

    The command belongs to the handler's module; it is offered when that module is listed in
    ``HERMES_GATEWAY["SLASH_COMMANDS"]``. ``reads_transcript`` sends it ``ctx.messages``.
    """
    slug = command_slug(name)
    if not _NAME.fullmatch(slug):
        raise ValueError(
            f"slash command name {name!r}: a letter, then up to 31 of a-z 0-9 _ - (lower case)"
        )
    if not description.strip():
        raise ValueError(f"slash command {slug}: a description is required")
    shown_usage = usage.strip() or slug
    if command_slug(shown_usage.partition(" ")[0]) != slug:
        raise ValueError(f"slash command {slug}: usage {usage!r} must start with {slug}")

    def register(handler: CommandHandler) -> CommandHandler:
        spec = CommandSpec(slug, description.strip(), shown_usage, reads_transcript)
        module = getattr(handler, "__module__", "") or ""
        _by_module.setdefault(module, []).append(Command(spec, handler, module))
        return handler

    return register


def build_table(modules: Iterable[str]) -> Table:
    """Import ``modules`` and return the built-ins plus their commands (``handlers`` holds only
    theirs). A clash keeps the command seen first (built-ins win) and is recorded, as is a
    module that fails to import."""
    specs = list(COMMANDS)
    handlers: dict[str, CommandHandler] = {}
    owners = {spec.name: "built-in" for spec in COMMANDS}
    problems: list[Problem] = []
    for module in dict.fromkeys(modules):
        try:
            importlib.import_module(module)
        except Exception as exc:  # any failure of third-party code is reported, not raised
            problems.append(Problem("import", module, f"{type(exc).__name__}: {exc}"))
            continue
        for entry in _by_module.get(module, ()):
            name = entry.spec.name
            owner = owners.get(name)
            if owner is not None:
                kind = "builtin" if owner == "built-in" else "duplicate"
                problems.append(Problem(kind, module, f"{name} is already defined by {owner}"))
                continue
            owners[name] = module
            specs.append(entry.spec)
            handlers[name] = entry.handler
    return Table(tuple(specs), handlers, tuple(problems))
