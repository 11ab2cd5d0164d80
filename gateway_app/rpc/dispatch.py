"""
The method registry and the one dispatch both transports use. Everything a handler raises
stops here: ``RpcError`` becomes its error response, anything else is logged and answered
-32603, and the connection carries on.

Public API for custom methods: in a module listed in ``HERMES_GATEWAY["RPC_METHODS"]``,
decorate ``async def handler(ctx, params) -> dict`` with :func:`method`. ``ctx`` is the
:class:`~.context.CallContext` (``ctx.caller.user_id`` / ``.username``, ``ctx.channel_name``);
``params`` is the request's params object (read it with the typed accessors of
:mod:`.params`, which raise :class:`~.errors.InvalidParams` naming the field). Return the
result object; raise an :class:`~.errors.RpcError` subclass (``InvalidParams``,
``SessionNotFound``, ``SessionBusy``, ``RateLimited``...) for an error response. Declare
``params`` and ``result`` as JSON Schemas: ``rpc.discover`` and docs/protocol.md show them.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ..conf import setting
from ..metrics import families
from .context import CallContext
from .errors import InternalError, MethodNotFound, ParseError, RpcError
from .protocol import Frame, Rejected, Request, error_message, result_message
from .schema import Schema, obj

logger = logging.getLogger(__name__)

Handler = Callable[[CallContext, dict[str, Any]], Awaitable[dict[str, Any]]]

#: The gateway's own handler modules, loaded before any of ``RPC_METHODS``.
BUILTIN_MODULES: tuple[str, ...] = tuple(
    f"{__package__}.methods.{name}"
    for name in ("gateway", "session", "prompt", "respond", "slash", "discover")
)


@dataclass(frozen=True, slots=True)
class Method:
    """A registered JSON-RPC method: its wire name, handler, and what it takes and returns."""

    name: str
    handler: Handler
    module: str
    summary: str = ""
    params: Schema = field(default_factory=obj)
    result: Schema = field(default_factory=obj)

    @property
    def description(self) -> str:
        """The handler's docstring: the longer text of the protocol reference."""
        return " ".join((self.handler.__doc__ or "").split())


@dataclass(frozen=True)
class Registry:
    """The methods in effect: built-ins, then each ``RPC_METHODS`` module's; and why not all
    that were asked for are there (a module that failed to import, a name taken)."""

    methods: dict[str, Method]
    #: ``(module, detail)`` of each module that did not import.
    import_errors: tuple[tuple[str, str], ...] = ()
    #: Methods registered under a name already taken (the first one is kept).
    duplicates: tuple[Method, ...] = ()


#: Methods by the module that registered them, in registration order.
_by_module: dict[str, list[Method]] = {}
#: Bumped by every change to ``_by_module``, so the cached registries follow it.
_generation = 0


def method(
    name: str,
    *,
    params: Schema | None = None,
    result: Schema | None = None,
    summary: str = "",
) -> Callable[[Handler], Handler]:
    """Register an async handler ``(ctx, params) -> result`` under a JSON-RPC method name.

    ``params`` and ``result`` are JSON Schemas of the params and result objects (default: an
    empty object). A name registered twice is reported by a system check
    (gateway_app.E059), not raised, and the first registration answers.
    """

    def register(handler: Handler) -> Handler:
        module = getattr(handler, "__module__", "") or ""
        entry = Method(
            name,
            handler,
            module,
            summary or (handler.__doc__ or "").strip().split("\n")[0],
            params if params is not None else obj(),
            result if result is not None else obj(),
        )
        global _generation
        _by_module.setdefault(module, []).append(entry)
        _generation += 1
        return handler

    return register


def forget_module(module: str) -> None:
    """Drop the methods ``module`` registered (tests that register handlers of their own)."""
    global _generation
    _by_module.pop(module, None)
    _generation += 1


def extension_modules() -> tuple[str, ...]:
    """The configured ``RPC_METHODS``; none while the setting is invalid (a check says so)."""
    modules = setting("RPC_METHODS")
    if not isinstance(modules, list | tuple) or not all(isinstance(m, str) for m in modules):
        return ()
    return tuple(modules)


def registry() -> Registry:
    """The methods in effect for the current settings (built once per module list)."""
    return _build(extension_modules(), _generation)


def registered_methods() -> dict[str, Method]:
    """Every method a request can call now, by name, in registration order."""
    return dict(registry().methods)


@lru_cache(maxsize=8)
def _build(extensions: tuple[str, ...], generation: int) -> Registry:
    return build_registry(BUILTIN_MODULES, extensions)


def build_registry(builtins: Iterable[str], extensions: Iterable[str]) -> Registry:
    """Import the modules and collect their methods; a taken name keeps its first method."""
    methods: dict[str, Method] = {}
    import_errors: list[tuple[str, str]] = []
    duplicates: list[Method] = []
    for module in (*builtins, *extensions):
        try:
            importlib.import_module(module)
        except Exception as exc:  # third-party code: reported by the check, not raised
            logger.error("RPC_METHODS module %s does not import: %s", module, exc)
            import_errors.append((module, f"{type(exc).__name__}: {exc}"))
            continue
        for entry in _by_module.get(module, ()):
            if entry.name in methods:
                duplicates.append(entry)
            else:
                methods[entry.name] = entry
    return Registry(methods, tuple(import_errors), tuple(duplicates))


async def dispatch(ctx: CallContext, item: Request | Rejected) -> dict[str, Any] | None:
    """Run one parsed line and return its response, or ``None`` for a notification."""
    ctx.count("messages")
    if isinstance(item, Rejected):
        if isinstance(item.error, ParseError):
            ctx.count("parse_errors")
        if item.notification:
            logger.debug("notification dropped (user=%s): %s", ctx.caller.username, item.error)
            return None
        families.count_error(item.error.code)
        return error_message(item.id, item.error)
    try:
        entry = registry().methods.get(item.method)
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
    if item.notification:
        return None
    if "error" in response:
        families.count_error(response["error"]["code"])
    return response


async def dispatch_frame(ctx: CallContext, frame: Frame) -> list[dict[str, Any]]:
    """Run every line of a frame in order; returns the responses to send, in order."""
    responses = []
    for item in frame.items:
        response = await dispatch(ctx, item)
        if response is not None:
            responses.append(response)
    return responses
