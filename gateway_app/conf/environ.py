"""
Environment variables to gateway options, for hermes_site.settings: only what the
environment set (the defaults stay in the definitions), each parsed by its option's type,
and a malformed value stops the start naming its variable. No Django setup needed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from .options import OPTIONS

#: Any option, as a JSON object: HERMES_GATEWAY_OPTIONS='{"SEND_QUEUE_LIMIT": 500}'.
OPTIONS_VARIABLE = "HERMES_GATEWAY_OPTIONS"

_NUMBERS: dict[type, str] = {int: "an integer", float: "a number"}


def parse_env(name: str, value: str, type_: type) -> Any:
    """``value`` of the variable ``name`` as ``type_`` (str, int or float), or
    ImproperlyConfigured naming the variable and the value."""
    if type_ is str:
        return value
    if type_ not in _NUMBERS:
        raise TypeError(f"no environment parser for {type_.__name__} ({name})")
    try:
        return type_(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be {_NUMBERS[type_]}, got {value!r}") from None


def json_object_from_environ(environ: Mapping[str, str], name: str) -> dict[str, Any]:
    """The JSON object in the variable ``name`` (unset or empty: ``{}``)."""
    value = environ.get(name) or "{}"
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} is not valid JSON ({exc}): {value!r}") from None
    if not isinstance(parsed, dict):
        raise ImproperlyConfigured(f"{name} must be a JSON object, got {value!r}")
    return parsed


def options_from_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    """The options ``environ`` sets: each option's own variable, then HERMES_GATEWAY_OPTIONS
    over them. A numeric variable set to "" counts as unset."""
    options: dict[str, Any] = {}
    for option in OPTIONS:
        value = environ.get(option.env) if option.env else None
        if value is None or (value == "" and option.type is not str):
            continue
        options[option.name] = parse_env(option.env, value, option.type)
    options.update(json_object_from_environ(environ, OPTIONS_VARIABLE))
    return options
