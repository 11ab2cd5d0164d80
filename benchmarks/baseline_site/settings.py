"""
Settings for the baseline site: the InMemory channel layer configured as the gateway's, no
database, no apps beyond what a consumer needs. ``BENCH_LIST_SIZE`` sets how many rows the
constant ``session.list`` answer holds (the harness passes the rpc connection count).
"""

import os

SECRET_KEY = "hermes-benchmark-baseline-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]
INSTALLED_APPS: list[str] = []
# No DATABASES: Django falls back to the dummy backend, so close_old_connections() has nothing
# to close and the stock consumer's per-message thread hop costs only the hop itself.
USE_TZ = True
TIME_ZONE = "UTC"

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels.layers.InMemoryChannelLayer",
        "CONFIG": {"capacity": 5000, "expiry": 60},
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
}

BENCH_LIST_SIZE = int(os.environ.get("BENCH_LIST_SIZE", "8"))
