"""
The baseline consumers: the least code that answers the requests the benchmark sends, shaped
like the gateway's answers. ``session.list`` answers a constant; sessions are plain dicts in a
per-process registry (what a minimal server would keep); ``prompt.submit`` streams the prompt
back one word per ``message.delta`` frame, like the echo agent before coalescing.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

_WORDS = re.compile(r"\S+\s*")
_encoder = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False)

READY = {
    "jsonrpc": "2.0",
    "method": "event",
    "params": {
        "type": "gateway.ready",
        "payload": {
            "skin": {"name": "default", "accent": "#5b8def", "banner": "Hermes gateway"},
            "protocol": 1,
        },
    },
}

#: The constant ``session.list`` result: rows shaped like the gateway's.
SESSION_LIST = {
    "sessions": [
        {
            "session_id": uuid.UUID(int=index).hex,
            "title": "",
            "status": "live",
            "attached": True,
            "created_at": "2025-01-01T00:00:00.000000+00:00",
            "last_activity": "2025-01-01T00:00:00.000000+00:00",
            "messages": 0,
        }
        for index in range(settings.BENCH_LIST_SIZE)
    ]
}

#: Every session of this process, as the minimal dict a server would keep for it.
SESSIONS: dict[str, dict[str, Any]] = {}


class StockConsumer(AsyncJsonWebsocketConsumer):
    """A JSON-RPC consumer on the stock ``AsyncConsumer.dispatch``."""

    async def connect(self) -> None:
        self.attached: set[str] = set()
        self.turns: set[asyncio.Task] = set()
        await self.accept()
        await self.send_json(READY)

    @classmethod
    async def encode_json(cls, content: dict[str, Any]) -> str:
        return _encoder.encode(content)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not isinstance(content, dict):
            return
        request_id = content.get("id")
        params = content.get("params") or {}
        handler = getattr(self, "rpc_" + str(content.get("method", "")).replace(".", "_"), None)
        if handler is None:
            error = {"code": -32601, "message": f"Method not found: {content.get('method')}"}
            await self.send_json({"jsonrpc": "2.0", "id": request_id, "error": error})
            return
        try:
            result = await handler(params)
        except KeyError as exc:
            error = {"code": 4001, "message": f"Unknown session {exc}"}
            await self.send_json({"jsonrpc": "2.0", "id": request_id, "error": error})
            return
        await self.send_json({"jsonrpc": "2.0", "id": request_id, "result": result})

    async def disconnect(self, code: int) -> None:
        for task in self.turns:
            task.cancel()
        for session_id in getattr(self, "attached", ()):
            session = SESSIONS.get(session_id)
            if session is not None:
                session["attached"].discard(self.channel_name)
                if not session["attached"]:
                    session["status"] = "detached"

    ### Methods ###

    async def rpc_gateway_ping(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"pong": True}

    async def rpc_session_list(self, params: dict[str, Any]) -> dict[str, Any]:
        return SESSION_LIST

    async def rpc_session_create(self, params: dict[str, Any]) -> dict[str, Any]:
        now = datetime.now(UTC).isoformat()
        session = {
            "session_id": uuid.uuid4().hex,
            "title": str(params.get("title", "")),
            "status": "live",
            "created_at": now,
            "last_activity": now,
            "attached": {self.channel_name},
            "seq": 0,
            "history": [],
        }
        SESSIONS[session["session_id"]] = session
        self.attached.add(session["session_id"])
        return {k: session[k] for k in ("session_id", "title", "created_at")}

    async def rpc_session_close(self, params: dict[str, Any]) -> dict[str, Any]:
        SESSIONS.pop(params["session_id"])
        self.attached.discard(params["session_id"])
        return {"closed": True}

    async def rpc_prompt_submit(self, params: dict[str, Any]) -> dict[str, Any]:
        session = SESSIONS[params["session_id"]]
        turn_id = uuid.uuid4().hex
        task = asyncio.get_running_loop().create_task(
            self._stream(session, turn_id, str(params.get("text", "")))
        )
        self.turns.add(task)
        task.add_done_callback(self.turns.discard)
        return {"accepted": True, "turn_id": turn_id}

    ### Events ###

    async def _stream(self, session: dict[str, Any], turn_id: str, text: str) -> None:
        session["status"] = "running"
        await self._event(session, "message.start", {"turn_id": turn_id})
        for word in _WORDS.findall(text):
            await self._event(session, "message.delta", {"turn_id": turn_id, "text": word})
            # Yield between words, as the echo agent does.
            await asyncio.sleep(0)
        await self._event(
            session, "message.complete", {"turn_id": turn_id, "text": text, "interrupted": False}
        )
        session["history"] += [
            {"role": "user", "content": text},
            {"role": "assistant", "content": text},
        ]
        session["status"] = "live" if session["attached"] else "detached"

    async def _event(self, session: dict[str, Any], event_type: str, payload: dict) -> None:
        session["seq"] += 1
        await self.send_json(
            {
                "jsonrpc": "2.0",
                "method": "event",
                "params": {
                    "type": event_type,
                    "session_id": session["session_id"],
                    "seq": session["seq"],
                    "payload": payload,
                },
            }
        )


class NoHopConsumer(StockConsumer):
    """The same consumer, dispatching without the per-message thread hop (as the gateway does)."""

    async def dispatch(self, message: dict[str, Any]) -> None:
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)
