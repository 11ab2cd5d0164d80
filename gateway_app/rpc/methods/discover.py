"""``rpc.discover``: the OpenRPC document of every method this gateway answers (additive)."""

from __future__ import annotations

from typing import Any

from ..context import CallContext
from ..dispatch import method, registered_methods
from ..openrpc import document

#: The result is an OpenRPC document, whose own meta-schema (spec.open-rpc.org) describes it.
DOCUMENT = {
    "type": "object",
    "description": "an OpenRPC document",
    "properties": {
        "openrpc": {"type": "string"},
        "info": {"type": "object", "required": ["title", "version"]},
        "methods": {"type": "array", "items": {"type": "object", "required": ["name"]}},
        "components": {"type": "object"},
    },
    "required": ["openrpc", "info", "methods"],
}


@method("rpc.discover", result=DOCUMENT, summary="The OpenRPC document of this gateway.")
async def rpc_discover(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    """Every method with its params and result as JSON Schema, the event payloads and the
    error codes: the service discovery method of the OpenRPC convention."""
    return document(registered_methods().values())
