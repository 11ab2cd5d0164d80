"""
A minimal blocking WebSocket client on a raw socket, for hostile-client tests: it completes
the handshake, then sends masked frames and reads only when told to (a client that stalls).
"""

from __future__ import annotations

import base64
import os
import socket
import struct


class RawWebSocket:
    """One client connection; ``recv_buffer`` shrinks the kernel receive window."""

    def __init__(self, port: int, token: str, *, path: str = "/api/ws", recv_buffer: int = 0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if recv_buffer:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, recv_buffer)
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

    def send_text(self, text: str | bytes, *, opcode: int = 0x1) -> None:
        payload = text.encode("utf-8") if isinstance(text, str) else text
        self.sock.sendall(encode_frame(payload, opcode))

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def encode_frame(payload: bytes, opcode: int = 0x1) -> bytes:
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
    masked = (
        bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        if length < 4096
        else _mask(payload, mask)
    )
    return header + mask + masked


def _mask(payload: bytes, mask: bytes) -> bytes:
    # Fast path for large payloads: XOR as one big integer.
    repeated = (mask * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
        len(payload), "big"
    )
