"""WSGI entry point (gunicorn, and runserver through WSGI_APPLICATION)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tinko.settings")

application = get_wsgi_application()

# Local mode (no REDIS_URL): background jobs run on threads of this process.
from tinko.background import autostart_inprocess_worker  # noqa: E402

autostart_inprocess_worker()
