"""A third-party JSON-RPC method module, as ``RPC_METHODS`` documents one."""

from __future__ import annotations

from typing import Any

from gateway_app.rpc.context import CallContext
from gateway_app.rpc.dispatch import method
from gateway_app.rpc.errors import InvalidParams
from gateway_app.rpc.params import get_str
from gateway_app.rpc.schema import obj, string


@method(
    "weather.forecast",
    params=obj({"city": string("where", maxLength=100)}, required=("city",)),
    result=obj(
        {"city": string(), "forecast": string(), "asked_by": string()},
        required=("city", "forecast", "asked_by"),
    ),
    summary="Tomorrow's weather of a city.",
)
async def forecast(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    """A third-party method: typed params, the caller, and an error of the protocol's table."""
    city = get_str(params, "city", max_length=100, allow_empty=False)
    if city.lower() == "atlantis":
        raise InvalidParams("city", "is under water")
    return {"city": city, "forecast": "sunny", "asked_by": ctx.caller.username}
