"""Several workers sharing one Redis: where sessions live, forwarding, the signed layer."""
