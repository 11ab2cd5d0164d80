"""
``HERMES_GATEWAY["AGENT"]``, the Django way (like CACHES): ``{"BACKEND": "dotted.path",
"OPTIONS": {...}}``, or a string (a short name, or a dotted path with no options). The short
names ``echo`` and ``openai`` are aliases of the built-in backends. Every problem is an
``ExtensionError`` whose check id the system check reports.
"""

from __future__ import annotations

import inspect
from typing import Any

from django.utils.module_loading import import_string

from .base import Agent
from .errors import ExtensionError

ALIASES = {
    "echo": "gateway_app.agents.echo.EchoAgent",
    "openai": "gateway_app.agents.openai.OpenAIAgent",
}
_KEYS = {"BACKEND", "OPTIONS"}


def resolve_agent(value: Any) -> tuple[type[Agent], dict[str, Any]]:
    """The backend class and its constructor arguments (defaults under OPTIONS) that the
    AGENT setting ``value`` names, checked without building the agent."""
    backend, options = _parse(value)
    path = ALIASES.get(backend, backend)
    if "." not in path:
        raise ExtensionError(
            f"HERMES_GATEWAY['AGENT'] must be 'echo', 'openai' or a dotted path to an Agent "
            f"class, got {backend!r}.",
            "gateway_app.E003",
        )
    try:
        cls = import_string(path)
    except ImportError as exc:
        raise ExtensionError(
            f"HERMES_GATEWAY['AGENT'] BACKEND {path!r} cannot be imported: {exc}",
            "gateway_app.E050",
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, Agent)):
        raise ExtensionError(
            f"HERMES_GATEWAY['AGENT'] BACKEND {path!r} is not a subclass of "
            "gateway_app.agents.Agent.",
            "gateway_app.E051",
        )
    arguments = {**cls.default_options(), **options}
    try:
        inspect.signature(cls).bind(**arguments)
    except TypeError as exc:
        raise ExtensionError(
            f"HERMES_GATEWAY['AGENT'] OPTIONS do not fit {path}(): {exc}",
            "gateway_app.E053",
        ) from exc
    return cls, arguments


def build_agent(value: Any) -> Agent:
    """A new backend as the AGENT setting ``value`` configures it."""
    cls, arguments = resolve_agent(value)
    return cls(**arguments)


def _parse(value: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(value, str):
        return value, {}
    if not isinstance(value, dict) or not isinstance(value.get("BACKEND"), str):
        raise ExtensionError(
            "HERMES_GATEWAY['AGENT'] must be a backend name or "
            f"{{'BACKEND': 'dotted.path', 'OPTIONS': {{...}}}}, got {value!r}.",
            "gateway_app.E052",
        )
    options = value.get("OPTIONS", {})
    unknown = set(value) - _KEYS
    if not isinstance(options, dict) or unknown:
        detail = f"unknown keys {sorted(unknown)}" if unknown else f"OPTIONS {options!r}"
        raise ExtensionError(
            f"HERMES_GATEWAY['AGENT'] OPTIONS must be a dict of keyword arguments ({detail}).",
            "gateway_app.E052",
        )
    return value["BACKEND"], options
