"""
Per-message cost of the channel layer's serializers: plain msgpack (unauthenticated), the
signed serializer the gateway uses (HMAC-SHA256), and Fernet (channels-redis'
``symmetric_encryption_keys``: encrypted and authenticated), each serializing and then
deserializing a typical ``session.event`` message.

    python benchmarks/layer_signing.py [--iterations 100000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

#: A streamed delta as a session group sends it (about 230 bytes of msgpack).
MESSAGE = {
    "type": "session.event",
    "frame": '{"jsonrpc":"2.0","method":"event","params":{"type":"message.delta",'
    '"session_id":"0123456789abcdef0123456789abcdef","seq":1234,'
    '"payload":{"text":"hello world, some tokens"}}}',
    "__asgi_channel__": ["specific.0123456789abcdef!0123456789abcdef"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=100_000)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hermes_site.settings")
    import django

    django.setup()
    from channels_redis.serializers import MsgPackSerializer

    from gateway_app.sessions.cluster.signing import SignedMessageSerializer

    serializers = {
        "msgpack (unsigned)": MsgPackSerializer(random_prefix_length=12, expiry=60),
        "signed (HMAC-SHA256)": SignedMessageSerializer(random_prefix_length=12, expiry=60),
        "fernet": MsgPackSerializer(
            random_prefix_length=12, expiry=60, symmetric_encryption_keys=["bench-key"]
        ),
    }
    print(f"{'serializer':<22} {'us/message':>10} {'bytes':>6}")
    for name, serializer in serializers.items():
        started = time.perf_counter()
        for _ in range(args.iterations):
            serializer.deserialize(serializer.serialize(MESSAGE))
        per_message = (time.perf_counter() - started) / args.iterations * 1e6
        size = len(serializer.serialize(MESSAGE))
        print(f"{name:<22} {per_message:>10.2f} {size:>6}")


if __name__ == "__main__":
    main()
