"""
Settings for hermes-gateway.

Environment variables are read here, once; the gateway's options are defined (with their
defaults and variables) in ``gateway_app.conf``, and HERMES_GATEWAY holds only what the
environment set. The embedded defaults (no environment at all) give one process with the
InMemory channel layer, SQLite and the offline echo agent.
"""

import os
import warnings
from datetime import timedelta
from pathlib import Path

# Configures nothing and loads no models: safe before Django is set up.
from gateway_app.conf import options_from_environ, parse_env
from hermes_site import secret_key
from hermes_site.database import database_from_url

BASE_DIR = Path(__file__).resolve().parent.parent


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return parse_env(name, value, float) if value else default


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return parse_env(name, value, int) if value else default


DB_PATH = os.environ.get("HERMES_DB_PATH", str(BASE_DIR / "db.sqlite3"))
# Without DJANGO_SECRET_KEY: a random key generated once into a 0600 file beside the
# database, shared by every worker on this machine (secret_key.py). Never a published one.
SECRET_KEY = (
    secret_key.refuse_published(os.environ["DJANGO_SECRET_KEY"], "DJANGO_SECRET_KEY")
    if os.environ.get("DJANGO_SECRET_KEY")
    else secret_key.load_or_create(Path(f"{DB_PATH}.secret_key"))
)
DEBUG = _env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = [
    host.strip()
    for host in os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")
    if host.strip()
]
CSRF_TRUSTED_ORIGINS = [
    origin.strip()
    for origin in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",")
    if origin.strip()
]

# A production deploy behind HTTPS sets HERMES_HTTPS=1 (the README lists what else it sets):
# cookies only over HTTPS, plain HTTP redirected (/healthz spared, for load balancers), HSTS.
if _env_bool("HERMES_HTTPS", False):
    SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = _env_int("HERMES_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = _env_bool("HERMES_HSTS_INCLUDE_SUBDOMAINS", False)
    SECURE_HSTS_PRELOAD = _env_bool("HERMES_HSTS_PRELOAD", False)
# Behind a proxy that terminates TLS and sets this header to "https" (and drops a client's).
_PROXY_SSL_HEADER = os.environ.get("HERMES_PROXY_SSL_HEADER", "").strip()
if _PROXY_SSL_HEADER:
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _PROXY_SSL_HEADER.upper().replace("-", "_"), "https")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "axes",
    "gateway_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: it answers a locked-out login with 429.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "hermes_site.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "hermes_site.wsgi.application"
ASGI_APPLICATION = "hermes_site.asgi.application"

# DATABASE_URL (postgres://user:password@host:port/name, sqlite:///file) or the SQLite file
# at HERMES_DB_PATH; a URL that cannot be used stops every process here (database.py).
DATABASES = {"default": database_from_url(os.environ.get("DATABASE_URL"), DB_PATH)}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

# Login throttling (django-axes, deployment only: gateway_app does not need it). Failures
# are counted per username and client address together, in the database every worker
# shares: HERMES_LOGIN_FAILURE_LIMIT of them lock that pair out for HERMES_LOGIN_COOLOFF_S
# (each further try restarts the cool-off), while the same user from elsewhere, or another
# user from that address, can still log in. A success clears the count.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = _env_int("HERMES_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(seconds=_env_float("HERMES_LOGIN_COOLOFF_S", 900.0))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve straight from the app directories, so `runserver`/`daphne` work without collectstatic.
WHITENOISE_USE_FINDERS = True
warnings.filterwarnings("ignore", message="No directory at: .*staticfiles")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGIN_URL = "admin:login"

### Gateway ###

# Each option's own variable (REDIS_URL, HERMES_AGENT...), then HERMES_GATEWAY_OPTIONS: any
# option as a JSON object, e.g. HERMES_GATEWAY_OPTIONS='{"SEND_QUEUE_LIMIT": 500}'.
HERMES_GATEWAY = options_from_environ(os.environ)

### Channel layer ###

# The gateway's REDIS_URL (the session registry's Redis) is the layer's Redis too.
REDIS_URL = HERMES_GATEWAY.get("REDIS_URL") or ""
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "gateway_app.sessions.cluster.layers.ResilientRedisChannelLayer",
            "CONFIG": {
                # redis-py 8 defaults socket_timeout to 5 s, which aborts channels-redis'
                # blocking 5 s BZPOPMIN (django/channels_redis#422): allow longer reads,
                # but fail fast on connect so a Redis outage is reported promptly.
                "hosts": [
                    {"address": REDIS_URL, "socket_timeout": 15, "socket_connect_timeout": 2}
                ],
                # A fast token stream must not hit the default capacity of 100 and lose events.
                "capacity": 5000,
                "expiry": 60,
                "group_expiry": 86400,
            },
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": 5000, "expiry": 60},
        }
    }

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        # stderr only: the stdio transport owns stdout.
        "stderr": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "loggers": {
        "gateway_app": {
            "handlers": ["stderr"],
            "level": os.environ.get("HERMES_LOG_LEVEL", "INFO"),
            "propagate": False,
        },
    },
}
