"""The protocol reference generated from the method registry: the committed docs match it,
its schemas are valid, and every method's real responses conform to its result schema."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from jsonschema import Draft202012Validator

from gateway_app.management.commands import gateway_protocol
from gateway_app.rpc.dispatch import registered_methods
from gateway_app.rpc.openrpc import reference_files, shipped_document
from tests.support.protocol import V1_METHODS

gateway_db = pytest.mark.django_db(transaction=True)


def test_the_committed_reference_is_the_generated_one():
    """Tests that docs/protocol.md and docs/openrpc.json are what the registry generates."""
    stale = gateway_protocol.stale_files(gateway_protocol.docs_dir())
    assert not stale, f"{stale} out of date: run `manage.py gateway_protocol --write`"


def test_the_check_option_fails_on_stale_docs_naming_the_command(tmp_path, monkeypatch):
    """Tests that ``gateway_protocol --check`` fails on missing docs and says how to fix it."""
    monkeypatch.setattr(gateway_protocol, "docs_dir", lambda: tmp_path)
    with pytest.raises(CommandError, match="gateway_protocol --write"):
        call_command("gateway_protocol", "--check")
    call_command("gateway_protocol", "--write")
    call_command("gateway_protocol", "--check")
    assert (tmp_path / "protocol.md").read_text() == reference_files()["protocol.md"]


def test_the_reference_describes_every_v1_method_and_rpc_discover():
    """Tests that every method of PROTOCOL.md, plus rpc.discover and session.history, is in
    the document."""
    names = {m["name"] for m in shipped_document()["methods"]}
    assert names == {*V1_METHODS, "rpc.discover", "session.history"}


def test_every_schema_of_the_reference_is_valid_json_schema():
    """Tests that each params, result and event schema is a valid JSON Schema (2020-12)."""
    doc = shipped_document()
    schemas = [p["schema"] for m in doc["methods"] for p in m["params"]]
    schemas += [m["result"]["schema"] for m in doc["methods"]]
    schemas += list(doc["components"]["schemas"].values())
    for schema in schemas:
        Draft202012Validator.check_schema(schema)


def test_the_markdown_shows_each_methods_params_and_result():
    """Tests that docs/protocol.md has a section per method with its fields."""
    text = reference_files()["protocol.md"]
    assert "### session.resume" in text
    assert "| `last_seq` | integer (minimum 0) |  |" in text
    assert "| `sessions[].status` |" in text


### Real responses against the result schemas ###

Scenario = Callable[[Any], Awaitable[tuple[str, dict[str, Any]]]]


async def _session(rpc) -> str:
    return (await rpc.call("session.create", {"title": "schemas"}))["session_id"]


async def _with_turn(rpc) -> str:
    sid = await _session(rpc)
    await rpc.turn(sid, "hello schemas")
    return sid


async def _question(rpc, prompt: str, event: str) -> tuple[str, str]:
    sid = await _session(rpc)
    await rpc.call("prompt.submit", {"session_id": sid, "text": prompt})
    request = await rpc.event(event)
    return sid, request["payload"]["request_id"]


async def ping(rpc):
    return "gateway.ping", {}


async def create(rpc):
    return "session.create", {"title": "new"}


async def listing(rpc):
    await _with_turn(rpc)
    return "session.list", {}


async def resume(rpc):
    return "session.resume", {"session_id": await _with_turn(rpc), "last_seq": 1}


async def history(rpc):
    return "session.history", {"session_id": await _with_turn(rpc), "limit": 1}


async def close(rpc):
    return "session.close", {"session_id": await _session(rpc)}


async def interrupt(rpc):
    sid = await _session(rpc)
    await rpc.call("prompt.submit", {"session_id": sid, "text": "!sleep 30 long"})
    await rpc.event("message.start")
    return "session.interrupt", {"session_id": sid}


async def submit(rpc):
    return "prompt.submit", {"session_id": await _session(rpc), "text": "hi"}


async def approve(rpc):
    sid, request_id = await _question(rpc, "!tool ls", "approval.request")
    return "approval.respond", {"session_id": sid, "request_id": request_id, "choice": "once"}


async def clarify(rpc):
    sid, request_id = await _question(rpc, "!clarify which?", "clarify.request")
    return "clarify.respond", {"session_id": sid, "request_id": request_id, "answer": "this"}


async def slash(rpc):
    return "slash.exec", {"session_id": await _session(rpc), "command": "/status"}


async def catalog(rpc):
    return "commands.catalog", {}


async def complete(rpc):
    return "complete.slash", {"text": "/h"}


async def discover(rpc):
    return "rpc.discover", {}


SCENARIOS: dict[str, Scenario] = {
    "gateway.ping": ping,
    "session.create": create,
    "session.list": listing,
    "session.resume": resume,
    "session.history": history,
    "session.close": close,
    "session.interrupt": interrupt,
    "prompt.submit": submit,
    "approval.respond": approve,
    "clarify.respond": clarify,
    "slash.exec": slash,
    "commands.catalog": catalog,
    "complete.slash": complete,
    "rpc.discover": discover,
}


def test_every_method_has_a_response_scenario():
    """Tests that a method added to the registry cannot skip the response check below."""
    assert set(SCENARIOS) == set(registered_methods())


@gateway_db
@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_a_real_response_matches_the_methods_schemas(name, connect, alice):
    """Tests that valid params pass the params schema and the error-free response the
    result schema of the served document."""
    rpc = await connect(alice)
    schemas = {m["name"]: m for m in (await rpc.call("rpc.discover"))["methods"]}
    method, params = await SCENARIOS[name](rpc)
    assert method == name
    entry = schemas[name]
    params_schema = {
        "type": "object",
        "properties": {p["name"]: p["schema"] for p in entry["params"]},
        "required": [p["name"] for p in entry["params"] if p["required"]],
        "additionalProperties": False,
    }
    Draft202012Validator(params_schema).validate(params)
    result = await rpc.call(method, params)
    Draft202012Validator(
        entry["result"]["schema"], format_checker=Draft202012Validator.FORMAT_CHECKER
    ).validate(result)
