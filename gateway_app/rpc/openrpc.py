"""
The protocol reference, generated from the method registry so that it cannot drift: an
OpenRPC document (served by ``rpc.discover``, written to docs/openrpc.json) and its Markdown
rendering (docs/protocol.md), both written by ``manage.py gateway_protocol --write``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from . import errors
from .dispatch import BUILTIN_MODULES, Method, build_registry
from .events import EVENTS

OPENRPC_VERSION = "1.3.2"
#: The wire protocol's version (``gateway.ready``'s ``protocol``).
PROTOCOL_VERSION = "1"

_ERRORS = (
    (errors.PARSE_ERROR, "line is not valid JSON"),
    (errors.INVALID_REQUEST, "valid JSON but not a request object"),
    (errors.METHOD_NOT_FOUND, "unknown method"),
    (errors.INVALID_PARAMS, "params missing, of the wrong type or out of range"),
    (errors.INTERNAL_ERROR, "a handler crashed; the connection stays open"),
    (errors.SESSION_NOT_FOUND, "unknown session, or one of another user"),
    (errors.SESSION_BUSY, "prompt.submit while a turn is running"),
    (errors.TOO_LARGE, "message or frame too large"),
    (errors.RATE_LIMITED, "rate limit exceeded"),
)


def _params(schema: dict[str, Any]) -> list[dict[str, Any]]:
    # OpenRPC describes by-name params one content descriptor per property.
    required = set(schema.get("required", ()))
    return [
        {"name": name, "required": name in required, "schema": prop}
        for name, prop in schema.get("properties", {}).items()
    ]


def method_entry(entry: Method) -> dict[str, Any]:
    """One method of the document: by-name params and its result, as JSON Schema."""
    item: dict[str, Any] = {"name": entry.name}
    if entry.summary:
        item["summary"] = entry.summary
    if entry.description and entry.description != entry.summary:
        item["description"] = entry.description
    item["paramStructure"] = "by-name"
    item["params"] = _params(entry.params)
    item["result"] = {"name": "result", "schema": entry.result}
    return item


def document(methods: Iterable[Method]) -> dict[str, Any]:
    """The OpenRPC document of ``methods``, with the events and error codes as components."""
    return {
        "openrpc": OPENRPC_VERSION,
        "info": {
            "title": "hermes-gateway",
            "version": PROTOCOL_VERSION,
            "description": "Newline-delimited JSON-RPC 2.0 over WebSocket (/api/ws) and stdio. "
            'Events arrive as notifications {"method": "event", "params": {"type", '
            '"session_id"?, "seq"?, "payload"}}; components.schemas holds each payload.',
        },
        "methods": [method_entry(entry) for entry in methods],
        "components": {
            "schemas": {f"event.{name}": schema for name, schema in EVENTS.items()},
            "errors": {str(code): {"code": code, "message": text} for code, text in _ERRORS},
        },
    }


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _type(schema: dict[str, Any]) -> str:
    # A compact rendering of one schema for a table cell; the full one is in openrpc.json.
    if "const" in schema:
        return f"`{_json(schema['const'])}`"
    if "enum" in schema:
        return " \\| ".join(f"`{_json(v)}`" for v in schema["enum"])
    kind = schema.get("type", "any")
    if isinstance(kind, list):
        kind = " or ".join(kind)
    if kind == "array":
        return f"array of {_type(schema.get('items', {}))}"
    if kind == "object" and schema.get("properties"):
        return "object: " + ", ".join(f"`{name}`" for name in schema["properties"])
    limits = [
        f"{key} {schema[key]}"
        for key in ("minLength", "maxLength", "minimum", "maximum")
        if key in schema
    ]
    return kind + (f" ({', '.join(limits)})" if limits else "")


def _fields(schema: dict[str, Any], prefix: str = "") -> list[str]:
    properties = schema.get("properties", {})
    if not properties:
        return ["(none)", ""]
    required = set(schema.get("required", ()))
    lines = ["| field | type | required | description |", "|---|---|---|---|"]
    nested: list[tuple[str, dict[str, Any]]] = []
    for name, prop in properties.items():
        needed = "yes" if name in required else ""
        text = prop.get("description", "").replace("|", "\\|")
        lines.append(f"| `{prefix}{name}` | {_type(prop)} | {needed} | {text} |")
        items = prop.get("items", {}) if prop.get("type") == "array" else prop
        if items.get("type") == "object" and items.get("properties"):
            nested.append(
                (f"{prefix}{name}[]." if items is not prop else f"{prefix}{name}.", items)
            )
    lines.append("")
    for sub_prefix, sub in nested:
        lines += _fields(sub, sub_prefix)
    return lines


def markdown(doc: dict[str, Any]) -> str:
    """docs/protocol.md: every method's params and result, the events and the error codes."""
    info = doc["info"]
    lines = [
        "# hermes-gateway protocol reference",
        "",
        "<!-- Generated from the method registry by `manage.py gateway_protocol --write`; "
        "do not edit. -->",
        "",
        f"Protocol version {info['version']}. {info['description']} The same document is "
        "served by the method `rpc.discover` (OpenRPC) and kept in [openrpc.json](openrpc.json).",
        "",
        "## Methods",
        "",
        " · ".join(f"[`{m['name']}`](#{m['name'].replace('.', '')})" for m in doc["methods"]),
        "",
    ]
    for item in doc["methods"]:
        lines += [f"### {item['name']}", ""]
        if item.get("summary"):
            lines += [item["summary"], ""]
        if item.get("description"):
            lines += [item["description"], ""]
        schema = {
            "properties": {p["name"]: p["schema"] for p in item["params"]},
            "required": [p["name"] for p in item["params"] if p["required"]],
        }
        lines += ["Params:", "", *_fields(schema)]
        result = item["result"]["schema"]
        if result.get("properties"):
            lines += ["Result:", "", *_fields(result)]
        else:
            lines += [f"Result: {result.get('description', 'an object')}.", ""]
    lines += ["## Events", "", "| type | payload |", "|---|---|"]
    for name, schema in doc["components"]["schemas"].items():
        lines.append(f"| `{name.removeprefix('event.')}` | {_type(schema)} |")
    lines += ["", "## Errors", "", "| code | when |", "|---|---|"]
    for error in doc["components"]["errors"].values():
        lines.append(f"| {error['code']} | {error['message']} |")
    return "\n".join(lines) + "\n"


def openrpc_json(doc: dict[str, Any]) -> str:
    """docs/openrpc.json: the document, stable key order, one trailing newline."""
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def shipped_document() -> dict[str, Any]:
    """The document of the gateway's own methods, without any ``RPC_METHODS`` extension:
    what the docs in the repository describe."""
    return document(build_registry(BUILTIN_MODULES, ()).methods.values())


def reference_files() -> dict[str, str]:
    """The generated docs by their path relative to the docs directory."""
    doc = shipped_document()
    return {"protocol.md": markdown(doc), "openrpc.json": openrpc_json(doc)}
