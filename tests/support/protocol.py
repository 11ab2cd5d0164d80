"""Facts of the wire contract the tests share."""

#: The methods of PROTOCOL.md v1, in its order.
V1_METHODS = (
    "gateway.ping",
    "session.create",
    "session.list",
    "session.resume",
    "session.close",
    "session.interrupt",
    "prompt.submit",
    "approval.respond",
    "clarify.respond",
    "slash.exec",
    "commands.catalog",
    "complete.slash",
)
