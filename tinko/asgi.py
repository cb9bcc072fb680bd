"""ASGI entry point (e.g. uvicorn tinko.asgi:application)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tinko.settings")

application = get_asgi_application()

# Local mode (no REDIS_URL): background jobs run on threads of this process.
from tinko.background import autostart_inprocess_worker  # noqa: E402

autostart_inprocess_worker()
