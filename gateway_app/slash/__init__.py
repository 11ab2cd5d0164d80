"""
Slash commands: the catalog, the per-session worker process (``python -m
gateway_app.slash.worker``, no Django) and the parent side that drives it. The package imports
nothing, so the worker starts without the gateway.
"""
