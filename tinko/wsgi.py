import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tinko.settings")

application = get_wsgi_application()

# Local mode (no REDIS_URL): background work runs on threads of this process.
from tinko.background import start_inprocess_worker  # noqa: E402

start_inprocess_worker()
