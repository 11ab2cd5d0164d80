"""WSGI entry point, for management tooling only: the gateway itself needs ASGI."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hermes_site.settings")
application = get_wsgi_application()
