"""
The OpenAI-compatible backend: streams ``/chat/completions`` over SSE with ``httpx``, offers
the model the configured tools (the ``TOOLS`` setting) and its own ``clarify``, and runs the
calls through ``Turn.call_tool`` (permission, approval, then the tool).

Every failure (network, HTTP status, malformed stream, timeout) becomes an ``AgentError`` with
a readable message. Tool calls whose arguments are not a JSON object are not run: the error is
reported as that call's result (to the client and to the model, which can retry).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from ..conf import setting
from .base import Agent, AgentError, Turn
from .tools import Tool, load_tools

logger = logging.getLogger(__name__)

DEFAULT_SYSTEM_PROMPT = (
    "You are Hermes, a helpful assistant in a terminal. Use the terminal tool to run shell "
    "commands (the user approves each one) and the clarify tool when the request is ambiguous."
)
MAX_TOOL_ROUNDS = 8
CONNECT_TIMEOUT_S = 10.0
_EXCERPT_CHARS = 200


CLARIFY_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "clarify",
        "description": "Ask the user a clarifying question; returns the answer.",
        "parameters": {
            "type": "object",
            "properties": {"question": {"type": "string"}},
            "required": ["question"],
        },
    },
}


@dataclass
class ToolCall:
    """One tool call, assembled from streamed fragments."""

    id: str = ""
    name: str = ""
    arguments: str = ""

    def as_dict(self) -> dict[str, Any]:
        function = {"name": self.name, "arguments": self.arguments}
        return {"id": self.id, "type": "function", "function": function}


class OpenAIAgent(Agent):
    """A chat-completions streaming backend (OpenAI, or any compatible server)."""

    name = "openai"

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        model: str,
        timeout: float,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        max_tool_rounds: int = MAX_TOOL_ROUNDS,
        tools: Sequence[Tool] | None = None,
    ) -> None:
        """``tools``: the tools offered to the model; None, those of the TOOLS setting."""
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.api_key = api_key
        self.model = model
        self.timeout = float(timeout)
        self.system_prompt = system_prompt
        self.max_tool_rounds = max_tool_rounds
        self.tools = {t.name: t for t in (load_tools(setting("TOOLS")) if tools is None else tools)}
        self.tool_schemas = [*(t.schema() for t in self.tools.values()), CLARIFY_TOOL]
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def default_options(cls) -> dict[str, Any]:
        return {
            "base_url": setting("OPENAI_BASE_URL"),
            "api_key": setting("OPENAI_API_KEY"),
            "model": setting("MODEL"),
            "timeout": setting("AGENT_TIMEOUT_S"),
        }

    def _http(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        # A pool is bound to its event loop; a new loop (tests, stdio) gets a new client.
        if self._client is None or self._client.is_closed or self._client_loop is not loop:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout, connect=CONNECT_TIMEOUT_S)
            )
            self._client_loop = loop
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def run(self, turn: Turn) -> None:
        messages = self._messages(turn)
        reply = ""
        for _ in range(self.max_tool_rounds + 1):
            # Separate the text of successive rounds so the concatenated reply reads well.
            sep = "\n\n" if reply and not reply[-1].isspace() else ""
            text, calls = await self._complete(turn, messages, sep)
            reply += (sep + text) if text else ""
            if not calls:
                return
            tool_calls = [c.as_dict() for c in calls]
            messages.append(
                {"role": "assistant", "content": text or None, "tool_calls": tool_calls}
            )
            for call in calls:
                result = await self._run_tool(turn, call)
                messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
        raise AgentError(f"The model was still calling tools after {self.max_tool_rounds} rounds")

    def _messages(self, turn: Turn) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = [{"role": "system", "content": self.system_prompt}]
        # Only plain user/assistant text is replayed: a stored tool message without its
        # assistant tool_calls message would be rejected by the API.
        for item in turn.history:
            if item.get("role") in ("user", "assistant") and isinstance(item.get("content"), str):
                messages.append({"role": item["role"], "content": item["content"]})
        messages.append({"role": "user", "content": turn.text})
        return messages

    ### HTTP and SSE ###

    async def _complete(
        self, turn: Turn, messages: list[dict[str, Any]], sep: str
    ) -> tuple[str, list[ToolCall]]:
        """One streaming request: stream its text to ``turn``, return the text and tool calls."""
        body = {"model": self.model, "messages": messages, "stream": True}
        body["tools"] = self.tool_schemas
        headers = {"Accept": "text/event-stream"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        logger.debug("POST %s (%d messages)", self.url, len(messages))
        try:
            async with self._http().stream("POST", self.url, json=body, headers=headers) as resp:
                if resp.status_code >= 400:
                    raise await _status_error(resp)
                return await self._read_stream(turn, resp, sep)
        except httpx.ConnectTimeout as exc:
            raise AgentError(f"No connection to {self.url} within {CONNECT_TIMEOUT_S:g}s") from exc
        except httpx.ReadTimeout as exc:
            raise AgentError(
                f"The model server at {self.url} sent nothing for {self.timeout:g}s"
            ) from exc
        except httpx.TimeoutException as exc:
            raise AgentError(f"Request to {self.url} timed out after {self.timeout:g}s") from exc
        except (httpx.ConnectError, httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise AgentError(f"Cannot reach the model server at {self.url}: {_why(exc)}") from exc
        except httpx.HTTPError as exc:
            raise AgentError(
                f"Request to the model server at {self.url} failed: {_why(exc)}"
            ) from exc

    async def _read_stream(
        self, turn: Turn, resp: httpx.Response, sep: str
    ) -> tuple[str, list[ToolCall]]:
        text: list[str] = []
        calls: dict[int, ToolCall] = {}
        finished = False
        if "json" in resp.headers.get("content-type", ""):
            body = (await resp.aread()).decode("utf-8", errors="replace")
            raise AgentError(f"The model server did not stream (got JSON): {_excerpt(body)}")
        async for line in resp.aiter_lines():
            # SSE: only "data:" lines matter; comments, event/id fields and blanks are skipped.
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                finished = True
                break
            delta, finish = _parse_chunk(data)
            content = delta.get("content")
            if isinstance(content, str) and content:
                if not text and sep:
                    await turn.delta(sep)
                text.append(content)
                await turn.delta(content)
            fragments = delta.get("tool_calls")
            for pos, fragment in enumerate(fragments if isinstance(fragments, list) else []):
                _merge_tool_call(calls, pos, fragment)
            finished = finished or finish
        if not finished:
            raise AgentError("Malformed stream from the model server: it ended before [DONE]")
        ordered = [calls[i] for i in sorted(calls)]
        for i, call in enumerate(ordered):
            call.id = call.id or f"call_{i}"
        return "".join(text), ordered

    ### Tools ###

    async def _run_tool(self, turn: Turn, call: ToolCall) -> str:
        """Run one tool call (asking the user as needed); returns the result for the model."""
        try:
            args = json.loads(call.arguments or "{}")
        except json.JSONDecodeError:
            args = None
        tool = self.tools.get(call.name)
        if tool is not None and isinstance(args, dict) and tool.invalid(args) is None:
            return await turn.call_tool(tool, args)
        if call.name == "clarify" and isinstance(args, dict):
            question = args.get("question")
            if isinstance(question, str) and question.strip():
                tool_id = await turn.tool_start("clarify", {"question": question})
                answer = await turn.ask_clarify(question)
                await turn.tool_complete(tool_id, answer)
                return answer
        # Not runnable: say why, to the client and to the model (which may retry).
        if tool is None and call.name != "clarify":
            error = f"error: unknown tool {call.name!r}"
        else:
            error = f"error: invalid arguments for {call.name}: {_excerpt(call.arguments)}"
        tool_id = await turn.tool_start(call.name or "unknown", {"arguments": call.arguments})
        await turn.tool_complete(tool_id, error)
        return error


def _parse_chunk(data: str) -> tuple[dict[str, Any], bool]:
    """One SSE chunk's first-choice delta, and whether it carries a finish reason."""
    try:
        chunk = json.loads(data)
    except json.JSONDecodeError:
        raise AgentError(f"Malformed stream from the model server: {_excerpt(data)}") from None
    if isinstance(chunk, dict) and "error" in chunk:
        raise AgentError(f"Model server error: {_error_message(chunk, data)}")
    choices = chunk.get("choices") if isinstance(chunk, dict) else None
    if choices == []:
        return {}, False  # e.g. the final usage chunk
    choice = choices[0] if isinstance(choices, list) else None
    delta = (choice.get("delta") or {}) if isinstance(choice, dict) else None
    if not isinstance(choice, dict) or not isinstance(delta, dict):
        raise AgentError(f"Malformed stream from the model server (no choices): {_excerpt(data)}")
    return delta, bool(choice.get("finish_reason"))


def _merge_tool_call(calls: dict[int, ToolCall], pos: int, fragment: Any) -> None:
    if not isinstance(fragment, dict):
        raise AgentError("Malformed stream from the model server: bad tool_calls entry")
    index = fragment.get("index", pos)
    call = calls.setdefault(index if isinstance(index, int) else pos, ToolCall())
    if isinstance(fragment.get("id"), str):
        call.id = fragment["id"] or call.id
    function = fragment.get("function")
    if not isinstance(function, dict):
        return
    if isinstance(function.get("name"), str):
        call.name = function["name"] or call.name
    arguments = function.get("arguments")
    if isinstance(arguments, dict):
        # Some compatible servers send the arguments as an object rather than a JSON string.
        arguments = json.dumps(arguments)
    if isinstance(arguments, str):
        call.arguments += arguments


async def _status_error(resp: httpx.Response) -> AgentError:
    raw = b""
    async for part in resp.aiter_bytes():
        raw += part
        if len(raw) >= 4096:
            break
    body = raw.decode("utf-8", errors="replace")
    detail = _error_message(_json_or_none(body), body)
    status = resp.status_code
    if status == 401:
        return AgentError(f"The model server rejected the API key (HTTP 401): {detail}")
    if status == 429:
        retry = resp.headers.get("Retry-After")
        when = f" (Retry-After: {retry})" if retry else ""
        return AgentError(f"Rate limited by the model server (HTTP 429){when}: {detail}")
    return AgentError(f"The model server answered HTTP {status}: {detail}")


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def _error_message(payload: Any, fallback: str) -> str:
    """The ``error.message`` of an OpenAI-style error body, else an excerpt of the raw text."""
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return _excerpt(error["message"])
        if isinstance(error, str):
            return _excerpt(error)
    return _excerpt(fallback)


def _why(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    if not text:
        return "(empty)"
    return text if len(text) <= _EXCERPT_CHARS else text[:_EXCERPT_CHARS] + "..."
