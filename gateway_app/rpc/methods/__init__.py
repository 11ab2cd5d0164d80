"""JSON-RPC method handlers, one module per method family; ``dispatch`` imports them all."""
