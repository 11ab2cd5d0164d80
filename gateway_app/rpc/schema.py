"""
Small JSON Schema builders for the params and results declared next to each handler
(``@method(..., params=..., result=...)``), from which the OpenRPC document is generated.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

#: A session id as the gateway issues them.
SESSION_ID: Schema = {"type": "string", "description": "the session's id"}
BOOL_TRUE: Schema = {"const": True}


def obj(properties: dict[str, Schema] | None = None, *, required: tuple[str, ...] = ()) -> Schema:
    """An object with exactly these properties (no others), ``required`` among them."""
    schema: Schema = {
        "type": "object",
        "properties": dict(properties or {}),
        "additionalProperties": False,
    }
    if required:
        schema["required"] = list(required)
    return schema


def string(description: str = "", **constraints: Any) -> Schema:
    """A string, with optional JSON Schema constraints (``maxLength``, ``enum``...)."""
    schema: Schema = {"type": "string", **constraints}
    if description:
        schema["description"] = description
    return schema


def integer(description: str = "", **constraints: Any) -> Schema:
    """An integer, with optional constraints (``minimum``...)."""
    schema: Schema = {"type": "integer", **constraints}
    if description:
        schema["description"] = description
    return schema


def array(items: Schema, description: str = "") -> Schema:
    """A list of ``items``."""
    schema: Schema = {"type": "array", "items": items}
    if description:
        schema["description"] = description
    return schema


#: The result of methods that only acknowledge: ``{"ok": true}``.
OK: Schema = obj({"ok": BOOL_TRUE}, required=("ok",))
