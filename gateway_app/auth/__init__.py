"""
Who a connection is: Origin validation, cookie and token authentication, logins and token
revocation. ``gateway_app.auth.GatewayAuthStack`` is a stable public path (``hermes_site.asgi``
and deployments' ASGI files use it), so it is re-exported here; nothing else is.
"""

from .middleware import GatewayAuthStack

__all__ = ["GatewayAuthStack"]
