"""The client's typed calls against the gateway's method registry."""

import asyncio
import inspect
import json

from gateway_app.client.client import Gateway
from gateway_app.rpc.dispatch import BUILTIN_MODULES, build_registry


class _RecordingLink:
    """A link answering every request with an empty result and recording its method."""

    ready = {"type": "gateway.ready", "payload": {"protocol": 1, "skin": {}}}

    def __init__(self):
        self.methods, self.inbox = [], asyncio.Queue()

    async def send(self, text):
        message = json.loads(text)
        self.methods.append(message["method"])
        self.inbox.put_nowait(json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": {}}))

    async def recv(self):
        return await self.inbox.get()

    async def close(self):
        pass


def _dummy_args(function):
    """A string for each required positional parameter after ``self``."""
    parameters = list(inspect.signature(function).parameters.values())[1:]
    return ["x" for p in parameters if p.default is p.empty and p.kind is p.POSITIONAL_OR_KEYWORD]


async def test_every_builtin_method_has_a_typed_call():
    """Tests that the public coroutine methods of Gateway, plus prompt(), call every method
    the gateway registers, so a method added to the server without a typed call fails here."""
    link = _RecordingLink()

    async def dial():
        return link

    gateway = await Gateway(dial).open()
    try:
        for name, function in inspect.getmembers(Gateway, inspect.iscoroutinefunction):
            if name.startswith("_") or name in {"open", "close", "call"}:
                continue
            try:
                await getattr(gateway, name)(*_dummy_args(function))
            except (KeyError, TypeError, ValueError):
                pass  # an empty result does not parse: the request went out all the same
        await gateway.prompt("x", "x").accepted()
    finally:
        await gateway.close()
    registered = set(build_registry(BUILTIN_MODULES, ()).methods)
    assert registered - set(link.methods) == set()
