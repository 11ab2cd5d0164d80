"""
The method registry and the one dispatch both transports use. Everything a handler raises
stops here: ``RpcError`` becomes its error response, anything else is logged and answered
-32603, and the connection carries on.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .context import CallContext
from .errors import InternalError, MethodNotFound, ParseError, RpcError
from .protocol import Frame, Rejected, Request, error_message, result_message

logger = logging.getLogger(__name__)

Handler = Callable[[CallContext, dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Method:
    """A registered JSON-RPC method: its wire name and its handler."""

    name: str
    handler: Handler


_registry: dict[str, Method] = {}


def method(name: str) -> Callable[[Handler], Handler]:
    """Register an async handler ``(ctx, params) -> result`` under a JSON-RPC method name."""

    def register(handler: Handler) -> Handler:
        if name in _registry:
            raise ValueError(f"JSON-RPC method {name!r} registered twice")
        _registry[name] = Method(name, handler)
        return handler

    return register


def registered_methods() -> dict[str, Method]:
    _load_methods()
    return dict(_registry)


_methods_loaded = False


def _load_methods() -> None:
    # Importing the handler modules registers every handler exactly once. The flag spares
    # every request a pass through the import machinery.
    global _methods_loaded
    if not _methods_loaded:
        from .methods import gateway, prompt, respond, session, slash  # noqa: F401

        _methods_loaded = True


async def dispatch(ctx: CallContext, item: Request | Rejected) -> dict[str, Any] | None:
    """Run one parsed line and return its response, or ``None`` for a notification."""
    ctx.count("messages")
    if isinstance(item, Rejected):
        if isinstance(item.error, ParseError):
            ctx.count("parse_errors")
        if item.notification:
            logger.debug("notification dropped (user=%s): %s", ctx.caller.username, item.error)
            return None
        return error_message(item.id, item.error)
    _load_methods()
    try:
        entry = _registry.get(item.method)
        if entry is None:
            raise MethodNotFound(f"Method not found: {item.method}")
        result = await entry.handler(ctx, item.params)
    except RpcError as exc:
        response = error_message(item.id, exc)
    except Exception:
        ctx.count("dispatch_crashes")
        logger.exception("handler for %s crashed (user=%s)", item.method, ctx.caller.username)
        response = error_message(item.id, InternalError(f"Internal error in {item.method}"))
    else:
        response = result_message(item.id, result)
    return None if item.notification else response


async def dispatch_frame(ctx: CallContext, frame: Frame) -> list[dict[str, Any]]:
    """Run every line of a frame in order; returns the responses to send, in order."""
    responses = []
    for item in frame.items:
        response = await dispatch(ctx, item)
        if response is not None:
            responses.append(response)
    return responses
