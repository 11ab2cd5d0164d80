"""A JSON-RPC method module registering a name the gateway already uses."""

from __future__ import annotations

from typing import Any

from gateway_app.rpc.dispatch import method


@method("gateway.ping")
async def ping_again(ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
    """Not the gateway's ping."""
    return {"pong": False}
