"""Signed channel-layer messages: only a holder of the key derived from SECRET_KEY can put a
message into Redis that a worker accepts; forged, altered and stale ones are rejected (the
layer that drops them: test_layers.py)."""

import os
import types

import msgpack
import pytest

from gateway_app.sessions.cluster import signing
from gateway_app.sessions.cluster.signing import InvalidMessage, SignedMessageSerializer

MESSAGE = {"type": "session.event", "frame": '{"jsonrpc":"2.0","method":"event"}' + "x" * 150}


def serializer(**kwargs):
    return SignedMessageSerializer(random_prefix_length=12, expiry=60, **kwargs)


def signed_at(monkeypatch, offset_s, message=MESSAGE):
    """A message signed ``offset_s`` seconds from now (negative: in the past)."""
    now = signing.time.time()
    with monkeypatch.context() as patch:
        patch.setattr(signing, "time", types.SimpleNamespace(time=lambda: now + offset_s))
        return serializer().serialize(message)


def test_a_signed_message_round_trips():
    """Tests that a message signed with SECRET_KEY's key is read back unchanged."""
    signer = serializer()
    assert signer.deserialize(signer.serialize(MESSAGE)) == MESSAGE


def test_two_signings_of_one_message_differ():
    """Tests that each signing has its own nonce (channels-redis stores messages in a sorted
    set, where equal members would be one)."""
    signer = serializer()
    assert signer.serialize(MESSAGE) != signer.serialize(MESSAGE)


@pytest.mark.parametrize("where", ["mac", "timestamp", "nonce", "body"])
def test_a_tampered_byte_is_rejected(where):
    """Tests that changing any byte of a signed message (its MAC, timestamp, nonce or body)
    makes it fail verification."""
    data = bytearray(serializer().serialize(MESSAGE))
    offset = {"mac": 3, "timestamp": 34, "nonce": 42, "body": len(data) - 5}[where]
    data[offset] ^= 0x01
    with pytest.raises(InvalidMessage):
        serializer().deserialize(bytes(data))


def test_a_message_signed_with_another_key_is_rejected():
    """Tests that a message signed with another SECRET_KEY does not verify."""
    forged = serializer(secrets=["somebody-elses-secret"]).serialize(MESSAGE)
    with pytest.raises(InvalidMessage, match="signature"):
        serializer().deserialize(forged)


@pytest.mark.parametrize("prefix", [0, 12])
def test_an_unsigned_msgpack_message_is_rejected(prefix):
    """Tests that what the plain channels-redis serializer stores (msgpack behind a random
    prefix), as anybody with a Redis client can write it, is refused."""
    unsigned = os.urandom(prefix) + msgpack.packb({**MESSAGE, "padding": "p" * 64})
    with pytest.raises(InvalidMessage):
        serializer().deserialize(unsigned)


def test_a_truncated_message_is_rejected():
    """Tests that bytes too short to carry a MAC, timestamp and nonce are refused."""
    with pytest.raises(InvalidMessage, match="short"):
        serializer().deserialize(b"\x00" * 20)


def test_a_message_signed_before_the_window_is_rejected(monkeypatch):
    """Tests that a genuine message older than the layer's expiry plus the clock skew (a
    capture kept for later) is refused."""
    stale = signed_at(monkeypatch, -(60 + signing.CLOCK_SKEW_S + 1))
    with pytest.raises(InvalidMessage, match="window"):
        serializer().deserialize(stale)


def test_a_message_signed_beyond_the_clock_skew_in_the_future_is_rejected(monkeypatch):
    """Tests that a timestamp far ahead (which would keep a message valid for long) is
    refused."""
    ahead = signed_at(monkeypatch, 60 + signing.CLOCK_SKEW_S + 1)
    with pytest.raises(InvalidMessage, match="window"):
        serializer().deserialize(ahead)


def test_a_message_signed_within_the_window_is_accepted(monkeypatch):
    """Tests that a message as old as the layer's expiry still verifies."""
    assert serializer().deserialize(signed_at(monkeypatch, -60)) == MESSAGE


def test_a_message_signed_with_a_fallback_secret_verifies(settings):
    """Tests that during a key rotation a worker still on the old SECRET_KEY (now in
    SECRET_KEY_FALLBACKS) is understood, while new messages are signed with the new key."""
    old = serializer(secrets=[settings.SECRET_KEY]).serialize(MESSAGE)
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "the-rotated-secret-key-" + "k" * 40
    rotated = serializer()
    assert rotated.deserialize(old) == MESSAGE
    with pytest.raises(InvalidMessage):
        serializer(secrets=[settings.SECRET_KEY_FALLBACKS[0]]).deserialize(
            rotated.serialize(MESSAGE)
        )


def test_encryption_keys_add_fernet_under_the_signature():
    """Tests that with symmetric_encryption_keys the body is not readable in Redis and still
    round-trips."""
    secret = "a-body-that-must-not-be-readable"
    signer = serializer(symmetric_encryption_keys=["fernet-key"])
    data = signer.serialize({"type": "x", "text": secret})
    assert secret.encode() not in data
    assert signer.deserialize(data) == {"type": "x", "text": secret}
