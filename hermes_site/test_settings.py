"""Settings for the test suite: the embedded defaults with a private SQLite file."""

from .settings import *  # noqa: F403
from .settings import HERMES_GATEWAY

HERMES_GATEWAY = {**HERMES_GATEWAY, "AGENT": "echo", "DELTA_COALESCE_MS": 0.0}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
