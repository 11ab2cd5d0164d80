"""A project's own extensions the tests configure by dotted path: agent backends, tools,
slash commands (Django-free, as the slash worker needs) and JSON-RPC methods."""
