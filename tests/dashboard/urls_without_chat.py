"""A host project's URLconf that routes none of the gateway's pages (its WebSocket only)."""

urlpatterns: list = []
