"""
Signed channel-layer messages: whoever can reach Redis without the key cannot forge one.

Every message the Redis layer stores is ``mac | timestamp | nonce | msgpack body``, the MAC an
HMAC-SHA256 over everything after it with a key derived from ``SECRET_KEY``, so every worker
(sharing it) signs and verifies alike; ``SECRET_KEY_FALLBACKS`` still verify during a key
rotation. A message whose MAC does not verify, or whose timestamp is outside the layer's
expiry plus ``CLOCK_SKEW_S``, raises ``InvalidMessage``; the layer drops it. The body is
authenticated, not encrypted (``symmetric_encryption_keys`` adds Fernet under the MAC).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
import time
from collections.abc import Iterable
from typing import Any

import msgpack
from channels_redis.serializers import BaseMessageSerializer, registry
from django.utils.crypto import salted_hmac

#: The ``serializer_format`` of the signed serializer in channels-redis' registry.
SIGNED_FORMAT = "hermes-signed"
#: Fixed salt of the key derivation: the layer's key is used for nothing else.
KEY_SALT = "hermes-gateway.channel-layer"
#: Tolerated clock difference between workers, on top of the layer's expiry.
CLOCK_SKEW_S = 10.0

_MAC = hashlib.sha256().digest_size
_TIMESTAMP = struct.Struct(">d")
_HEADER = _MAC + _TIMESTAMP.size


class InvalidMessage(ValueError):
    """A stored message that was not signed with this deployment's key, or is stale."""


def derive_key(secret: str | bytes) -> bytes:
    """The layer's HMAC key for one ``SECRET_KEY`` (a one-way derivation, own salt)."""
    return salted_hmac(KEY_SALT, "message-signing", secret=secret, algorithm="sha256").digest()


def configured_secrets() -> list[str | bytes]:
    """``SECRET_KEY`` first (it signs), then each of ``SECRET_KEY_FALLBACKS`` (verify only)."""
    from django.conf import settings

    return [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", ())]


class SignedMessageSerializer(BaseMessageSerializer):
    """msgpack under an HMAC with a timestamp and a nonce (the nonce keeps members unique)."""

    def __init__(
        self,
        symmetric_encryption_keys: Iterable[str | bytes] | None = None,
        random_prefix_length: int = 12,
        expiry: float | None = None,
        secrets: Iterable[str | bytes] | None = None,
    ):
        super().__init__(symmetric_encryption_keys, random_prefix_length, expiry)
        keys = [derive_key(secret) for secret in (secrets or configured_secrets())]
        # Copies of keyed objects: the key schedule is computed once, not per message.
        self._macs = [hmac.new(key, digestmod=hashlib.sha256) for key in keys]
        self.window_s = None if expiry is None else float(expiry) + CLOCK_SKEW_S

    def as_bytes(self, message: dict[str, Any], *args: Any, **kwargs: Any) -> bytes:
        return msgpack.packb(message)

    def from_bytes(self, message: bytes, *args: Any, **kwargs: Any) -> Any:
        return msgpack.unpackb(message)

    def _mac(self, index: int, signed: bytes) -> bytes:
        mac = self._macs[index].copy()
        mac.update(signed)
        return mac.digest()

    def serialize(self, message: dict[str, Any]) -> bytes:
        body = self.as_bytes(message)
        if self.crypter:
            body = self.crypter.encrypt(body)
        signed = _TIMESTAMP.pack(time.time()) + os.urandom(self.random_prefix_length) + body
        return self._mac(0, signed) + signed

    def deserialize(self, message: bytes) -> dict[str, Any]:
        if len(message) < _HEADER + self.random_prefix_length:
            raise InvalidMessage("too short to carry a signature")
        mac, signed = message[:_MAC], message[_MAC:]
        if not hmac.compare_digest(mac, self._mac(0, signed)) and not any(
            hmac.compare_digest(mac, self._mac(index, signed))
            for index in range(1, len(self._macs))
        ):
            raise InvalidMessage("bad signature")
        (sent_at,) = _TIMESTAMP.unpack_from(signed)
        if self.window_s is not None and abs(time.time() - sent_at) > self.window_s:
            raise InvalidMessage(f"signed {time.time() - sent_at:.0f}s ago, outside the window")
        body = signed[_TIMESTAMP.size + self.random_prefix_length :]
        if self.crypter:
            body = self.crypter.decrypt(body)  # fresh: its timestamp was just checked
        decoded = self.from_bytes(body)
        if not isinstance(decoded, dict):
            raise InvalidMessage("not a message")
        return decoded


registry.register_serializer(SIGNED_FORMAT, SignedMessageSerializer)
