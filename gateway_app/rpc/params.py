"""
Typed accessors for request params. Each raises ``InvalidParams`` naming the field, so
handlers read params in one line and never answer a vague error.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .errors import InvalidParams

_MISSING = object()


def get_str(
    params: dict[str, Any],
    name: str,
    *,
    required: bool = True,
    default: str | None = None,
    max_length: int | None = None,
    allow_empty: bool = True,
) -> str | None:
    value = params.get(name, _MISSING)
    if value is _MISSING or value is None:
        if required:
            raise InvalidParams(name, "is required")
        return default
    if not isinstance(value, str):
        raise InvalidParams(name, f"must be a string, not {_json_type(value)}")
    if not allow_empty and not value.strip():
        raise InvalidParams(name, "must not be empty")
    if max_length is not None and len(value) > max_length:
        raise InvalidParams(name, f"must be at most {max_length} characters")
    return value


def get_int(
    params: dict[str, Any],
    name: str,
    *,
    required: bool = True,
    default: int | None = None,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int | None:
    value = params.get(name, _MISSING)
    if value is _MISSING or value is None:
        if required:
            raise InvalidParams(name, "is required")
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidParams(name, f"must be an integer, not {_json_type(value)}")
    if minimum is not None and value < minimum:
        raise InvalidParams(name, f"must be >= {minimum}")
    if maximum is not None and value > maximum:
        raise InvalidParams(name, f"must be <= {maximum}")
    return value


def get_choice(params: dict[str, Any], name: str, choices: Iterable[str]) -> str:
    allowed = tuple(choices)
    value = get_str(params, name)
    if value not in allowed:
        raise InvalidParams(name, "must be one of " + ", ".join(repr(c) for c in allowed))
    return value


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return type(value).__name__
