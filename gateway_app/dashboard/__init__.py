"""The HTTP side of the gateway: the chat page, the health check and the admin's live data."""
