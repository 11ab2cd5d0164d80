"""hermes-gateway's reusable Django app: the JSON-RPC gateway, its chat page and admin."""

#: The one version source: the build backend reads it (pyproject.toml, dynamic version).
__version__ = "0.1.0"
