"""WSGI entry point (gunicorn, and runserver through WSGI_APPLICATION)."""

import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tinko.settings")

application = get_wsgi_application()

# Local mode (no REDIS_URL): background jobs run on threads of this process.
from tinko.background import autostart_inprocess_worker  # noqa: E402

autostart_inprocess_worker()


def freeze_startup_objects() -> None:
    """Load what requests need, then leave the objects made so far out of every later garbage collection.

    Called by gunicorn.conf.py once a worker has loaded the app. A worker holds well over
    100,000 long-lived objects (Django, DRF, the URLs and views, the classifier's rules)
    that Python's cyclic collector walks again on every full collection, and a 1,000-event
    batch makes enough new objects to set one off every other batch or so, some 70 ms each
    (measured in-process: 0.029 ms of CPU per batch event, 0.0007 ms once frozen).
    ``gc.freeze()`` moves them to a generation no collection visits; objects made by
    requests are collected as before. Without ``preload_app`` each worker freezes its own.
    """
    from django.urls import get_resolver

    get_resolver().url_patterns  # imports every view module (and its serializers) now, not on the first request
    gc.collect()  # what start-up left as garbage is freed, not frozen
    gc.freeze()


M_ARENA_MAX = -8  # glibc's mallopt() parameter number (malloc.h)


def share_one_malloc_arena() -> bool:
    """Let every thread of this process allocate from glibc's one main arena; False where that is not glibc.

    glibc gives each new thread an arena of its own (up to eight per core), and memory
    freed in one thread's arena serves only that arena again. A gunicorn worker's request
    threads take turns serving 1,000-event batches, whose larger blocks (the rows' dicts,
    the body) come from malloc: each thread's arena grew to a batch's worth (a worker
    peaked at 152 MB, 143 MB sharing one arena). Only one thread runs Python at a time,
    so they hardly contend for it. ``MALLOC_ARENA_MAX=1`` in the environment does the same
    for a process started with it; gunicorn's workers are forked, hence this call.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    if not hasattr(libc, "gnu_get_libc_version"):  # mallopt's parameters are glibc's
        return False
    return bool(mallopt(M_ARENA_MAX, 1))
