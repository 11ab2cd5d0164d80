"""JSON-RPC 2.0 as both transports speak it: framing, the one dispatch, errors and handlers."""
