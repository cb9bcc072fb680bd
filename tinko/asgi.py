import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tinko.settings")

application = get_asgi_application()

from tinko.background import start_inprocess_worker  # noqa: E402

start_inprocess_worker()
