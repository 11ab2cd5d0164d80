"""
A minimal blocking WebSocket client on a raw socket, for hostile-client tests and the
stalled-client benchmark: it completes the handshake, then sends masked frames and reads
only when told to (a client that stalls). ``recv_buffer`` shrinks the kernel receive
buffer so that the server's side fills up soon after the client stops reading.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
from typing import Any

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA


class RawWebSocket:
    """One client connection; ``recv_buffer`` shrinks the kernel receive window."""

    def __init__(
        self,
        port: int,
        token: str,
        *,
        path: str = "/api/ws",
        recv_buffer: int = 0,
        timeout: float | None = 10.0,
    ):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if recv_buffer:
            # Set before connect: the window scale is negotiated in the handshake.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, recv_buffer)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise ConnectionError("closed during handshake")
            head += chunk
        self.status = int(head.split(b" ", 2)[1])
        #: Bytes of WebSocket frames read after the handshake.
        self.bytes_read = 0
        self._ids = 0

    ### Sending ###

    def send_text(self, text: str | bytes, *, opcode: int = OP_TEXT) -> None:
        payload = text.encode("utf-8") if isinstance(text, str) else text
        self.sock.sendall(encode_frame(payload, opcode))

    def send_request(self, method: str, params: dict[str, Any] | None = None) -> int:
        """Send one JSON-RPC request; returns its id."""
        self._ids += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": self._ids, "method": method}
        if params is not None:
            message["params"] = params
        self.send_text(json.dumps(message))
        return self._ids

    ### Reading (only when told to) ###

    def recv_frame(self) -> tuple[int, bytes]:
        """One whole server message as (opcode, payload); fragments are joined, pings are
        answered. Raises ``ConnectionError`` when the connection ends first."""
        opcode, message = None, b""
        while True:
            first, second = self._read_exact(2)
            fin, op, length = first & 0x80, first & 0x0F, second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", self._read_exact(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", self._read_exact(8))
            if second & 0x80:  # servers must not mask, but tolerate it
                mask = self._read_exact(4)
                payload = _unmask(self._read_exact(length), mask)
            else:
                payload = self._read_exact(length)
            if op == OP_PING:
                self.send_text(payload, opcode=OP_PONG)
                continue
            if op == OP_PONG:
                continue
            if op == OP_CLOSE:
                return op, payload
            if op != OP_CONTINUATION:
                opcode = op
            message += payload
            if fin:
                return opcode if opcode is not None else op, message

    def recv_json(self) -> dict[str, Any]:
        """The next data message, parsed; a close frame raises ``ConnectionError``."""
        opcode, payload = self.recv_frame()
        if opcode == OP_CLOSE:
            raise ConnectionError(f"server closed with {close_code(payload)}")
        return json.loads(payload)

    def response(self, request_id: int) -> dict[str, Any]:
        """Read messages (events are dropped) until the response to ``request_id``."""
        while True:
            message = self.recv_json()
            if message.get("id") == request_id and "method" not in message:
                return message

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """A request and its result, read synchronously (the setup phase before stalling)."""
        message = self.response(self.send_request(method, params))
        if "result" not in message:
            raise AssertionError(f"{method} failed: {message}")
        return message["result"]

    def read_until_closed(self) -> tuple[int | None, str]:
        """
        Read (and drop) everything until the connection ends. Returns (close code or None,
        how it ended: ``"close frame"``, ``"eof"``, ``"reset"`` or ``"timeout"``).
        """
        try:
            while True:
                opcode, payload = self.recv_frame()
                if opcode == OP_CLOSE:
                    return close_code(payload), "close frame"
        except TimeoutError:
            return None, "timeout"
        except ConnectionResetError:
            return None, "reset"
        except (ConnectionError, OSError):
            return None, "eof"

    def _read_exact(self, size: int) -> bytes:
        chunks = []
        while size:
            chunk = self.sock.recv(min(size, 1 << 16))
            if not chunk:
                raise ConnectionError("connection closed by the server")
            chunks.append(chunk)
            size -= len(chunk)
            self.bytes_read += len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> RawWebSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def close_code(payload: bytes) -> int | None:
    """The status code of a close frame's payload (None when it carries none)."""
    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None


def encode_frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    """One final, masked client frame."""
    header = bytes([0x80 | opcode])
    length = len(payload)
    if length < 126:
        header += bytes([0x80 | length])
    elif length < 1 << 16:
        header += bytes([0x80 | 126]) + struct.pack("!H", length)
    else:
        header += bytes([0x80 | 127]) + struct.pack("!Q", length)
    mask = os.urandom(4)
    return header + mask + _unmask(payload, mask)


def _unmask(payload: bytes, mask: bytes) -> bytes:
    """XOR with the repeating 4-byte mask (masking and unmasking are the same)."""
    if len(payload) < 4096:
        return bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    # Fast path for large payloads: XOR as one big integer.
    repeated = (mask * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
        len(payload), "big"
    )
