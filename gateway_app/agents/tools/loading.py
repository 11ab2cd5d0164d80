"""
``HERMES_GATEWAY["TOOLS"]``: a list of dotted paths to ``Tool`` classes, imported and
instantiated once per distinct list. Every problem is an ``ExtensionError`` with check id
``gateway_app.E054`` (the system check reports it; a worker refuses to build the agent).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from django.utils.module_loading import import_string

from ..errors import ExtensionError
from .base import Tool

CHECK_ID = "gateway_app.E054"
#: Names the OpenAI backend keeps for its own tools.
RESERVED_NAMES = frozenset({"clarify"})


def load_tools(paths: Any) -> tuple[Tool, ...]:
    """The tools ``paths`` (the TOOLS setting) names, validated."""
    if not isinstance(paths, list | tuple) or not all(isinstance(p, str) for p in paths):
        raise _error(f"must be a list of dotted paths to Tool classes, got {paths!r}")
    return _load(tuple(paths))


@lru_cache(maxsize=8)
def _load(paths: tuple[str, ...]) -> tuple[Tool, ...]:
    tools = tuple(_tool(path) for path in paths)
    seen: set[str] = set()
    for path, tool in zip(paths, tools, strict=True):
        if tool.name in RESERVED_NAMES or tool.name in seen:
            raise _error(f"{path}: the tool name {tool.name!r} is already taken")
        seen.add(tool.name)
    return tools


def _tool(path: str) -> Tool:
    try:
        cls = import_string(path)
    except ImportError as exc:
        raise _error(f"cannot import {path!r}: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Tool)):
        raise _error(f"{path!r} is not a subclass of gateway_app.agents.tools.Tool")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise _error(f"{path}: name must be a non-empty string, got {name!r}")
    if not isinstance(getattr(cls, "description", None), str):
        raise _error(f"{path}: description must be a string")
    problem = schema_problem(getattr(cls, "parameters", None))
    if problem is not None:
        raise _error(f"{path}: parameters {problem}")
    try:
        return cls()
    except Exception as exc:
        raise _error(f"{path}() failed: {type(exc).__name__}: {exc}") from exc


def schema_problem(schema: Any) -> str | None:
    """Why ``schema`` is not the JSON Schema object a function tool's parameters must be."""
    if not isinstance(schema, dict) or schema.get("type") != "object":
        return 'must be a JSON Schema object ({"type": "object", ...})'
    properties = schema.get("properties", {})
    schemas = properties.values() if isinstance(properties, dict) else [None]
    if not all(isinstance(v, dict) for v in schemas):
        return "properties must map each name to a schema (a dict)"
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(r in properties for r in required):
        return "required must list names of its properties"
    return None


def _error(detail: str) -> ExtensionError:
    return ExtensionError(f"HERMES_GATEWAY['TOOLS']: {detail}", CHECK_ID)
