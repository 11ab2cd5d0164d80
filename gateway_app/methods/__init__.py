"""JSON-RPC method handlers; importing this package registers them all."""

from . import gateway, prompt, respond, session, slash  # noqa: F401
