"""
Autobahn (daphne's WebSocket layer) builds the arguments of its debug log lines on every
connection and frame, whatever the log level: a pretty-printed dump of its ~40 settings per
handshake, and coloured type and value names per frame sent or received. Those helpers are
rebound here to lazy ones, so the text is made only when a debug line is really written.
"""

from __future__ import annotations

import pprint
from collections.abc import Callable
from typing import Any

#: Autobahn's modules whose log calls use the helpers, by import path.
MODULES = ("autobahn.websocket.protocol", "autobahn.twisted.websocket")


class LazyText:
    """``render(*args, **kwargs)``, computed when a log line formats it (``str`` or
    ``format``)."""

    __slots__ = ("_args", "_kwargs", "_render")

    def __init__(self, render: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._render = render
        self._args = args
        self._kwargs = kwargs

    def __str__(self) -> str:
        return str(self._render(*self._args, **self._kwargs))

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    def __repr__(self) -> str:
        return str(self)


def lazy(render: Callable[..., Any]) -> Callable[..., LazyText]:
    """A stand-in for ``render`` whose result is computed only when it is formatted."""

    def deferred(*args: Any, **kwargs: Any) -> LazyText:
        return LazyText(render, *args, **kwargs)

    deferred.__wrapped__ = render  # type: ignore[attr-defined]
    return deferred


def defer_debug_formatting() -> list[str]:
    """
    Rebind ``hltype``, ``hlval`` and ``pformat`` in autobahn's WebSocket modules to lazy
    versions; returns the names rebound (``module.name``). A name is left alone unless it is
    still the function this expects (another autobahn, or already rebound), so applying it
    twice, or to an autobahn that changed, does nothing wrong.
    """
    import importlib

    from autobahn import util

    expected = {"hltype": util.hltype, "hlval": util.hlval, "pformat": pprint.pformat}
    rebound = []
    for path in MODULES:
        module = importlib.import_module(path)
        for name, original in expected.items():
            if getattr(module, name, None) is original:
                setattr(module, name, lazy(original))
                rebound.append(f"{path}.{name}")
    timings = getattr(importlib.import_module(MODULES[0]), "Timings", None)
    if timings is not None and f"{MODULES[0]}.pformat" in rebound:
        # The one use of pformat that is not a log argument: a __str__ must return a str.
        timings.__str__ = _timings_text
    return rebound


def _timings_text(timings: Any) -> str:
    return pprint.pformat(timings._timings)
