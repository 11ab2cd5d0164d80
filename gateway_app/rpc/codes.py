"""
The wire's numbers: JSON-RPC error codes and the gateway's WebSocket close codes. No imports,
so the client library (which runs without Django) shares them with the server.
"""

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SESSION_NOT_FOUND = 4001
SESSION_BUSY = 4009
TOO_LARGE = 4013
RATE_LIMITED = 4029

#: WebSocket close codes (README "Beyond PROTOCOL.md v1").
#: Service restart (RFC 6455 registry): the worker is draining; reconnect at once and resume.
CLOSE_SERVICE_RESTART = 1012
CLOSE_FORBIDDEN = 4003
CLOSE_SEND_QUEUE_FULL = 4008
CLOSE_TOO_LARGE = 4013
CLOSE_TOO_MANY_CONNECTIONS = 4029
