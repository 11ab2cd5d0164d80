"""Autobahn's debug-log arguments, built only when a debug line is written."""

import importlib
import pprint

import pytest
from autobahn import util

from gateway_app.adapters import autobahn as adapter
from gateway_app.adapters.autobahn import MODULES, LazyText, defer_debug_formatting

NAMES = ("hltype", "hlval", "pformat")


def keep_autobahn_as_it_is(monkeypatch):
    """Have monkeypatch put autobahn's helpers (and Timings.__str__) back after the test."""
    for path in MODULES:
        module = importlib.import_module(path)
        for name in NAMES:
            if hasattr(module, name):
                monkeypatch.setattr(module, name, getattr(module, name))
    timings = importlib.import_module(MODULES[0]).Timings
    monkeypatch.setattr(timings, "__str__", timings.__dict__["__str__"])


@pytest.fixture
def rebound(monkeypatch):
    """Apply the rebinding for one test; autobahn's own helpers are back afterwards."""
    keep_autobahn_as_it_is(monkeypatch)
    return defer_debug_formatting()


def test_every_helper_autobahn_logs_with_is_rebound(rebound):
    """Tests that the helpers of both WebSocket modules are replaced, so this autobahn is
    one the rebinding knows (a new release that renamed them would fail here)."""
    assert set(rebound) >= {
        "autobahn.websocket.protocol.hltype",
        "autobahn.websocket.protocol.hlval",
        "autobahn.websocket.protocol.pformat",
        "autobahn.twisted.websocket.hltype",
        "autobahn.twisted.websocket.hlval",
    }


def test_a_rebound_helper_does_no_work_until_formatted(rebound, monkeypatch):
    """Tests that calling a rebound helper, as each connection and frame does, runs none
    of the original; formatting the result (a debug line written) runs it once."""
    protocol = importlib.import_module(MODULES[0])
    calls = []

    def counting(value):
        calls.append(value)
        return pprint.pformat(value)

    monkeypatch.setattr(protocol, "pformat", adapter.lazy(counting))
    text = protocol.pformat([("openHandshakeTimeout", 5, "Factory")])
    assert isinstance(text, LazyText) and calls == []
    assert f"\n{text}" == "\n[('openHandshakeTimeout', 5, 'Factory')]"
    assert len(calls) == 1


def test_formatted_lazy_text_is_the_original_text(rebound):
    """Tests that a debug line reads as before: each lazy result formats to exactly what
    autobahn's own helper returns."""
    protocol = importlib.import_module(MODULES[0])
    method = protocol.WebSocketProtocol.sendData
    assert f"{protocol.hltype(method)}" == util.hltype(method)
    assert str(protocol.hlval(42)) == util.hlval(42)
    assert format(protocol.pformat({"a": 1}), "") == pprint.pformat({"a": 1})


def test_timings_still_convert_to_text(rebound):
    """Tests that autobahn's Timings, whose __str__ returns pformat's result, still gives
    a str (a __str__ returning anything else raises)."""
    timings = importlib.import_module(MODULES[0]).Timings()
    timings.track("open")
    assert isinstance(str(timings), str) and "'open'" in str(timings)


def test_applying_twice_rebinds_nothing_more(rebound):
    """Tests that a second call finds no original helper left and changes nothing."""
    protocol = importlib.import_module(MODULES[0])
    before = {name: getattr(protocol, name) for name in NAMES}
    assert defer_debug_formatting() == []
    assert {name: getattr(protocol, name) for name in NAMES} == before


def test_a_helper_autobahn_changed_is_left_alone(monkeypatch):
    """Tests that a name bound to something other than the expected function (another
    autobahn release) is not touched."""
    protocol = importlib.import_module(MODULES[0])
    keep_autobahn_as_it_is(monkeypatch)
    mine = object()
    monkeypatch.setattr(protocol, "hlval", mine)
    rebound = defer_debug_formatting()
    assert protocol.hlval is mine
    assert "autobahn.websocket.protocol.hlval" not in rebound


def test_a_helper_called_with_keywords_renders_them(rebound):
    """Tests that keyword arguments (``hlval(v, color=...)``, in autobahn's signature) reach
    the original helper: a call site using one must not raise on every frame."""
    module = importlib.import_module(MODULES[0])
    assert str(module.hlval(7, color="green")) == util.hlval(7, color="green")
