"""Where background jobs (Dramatiq actors) run.

* Production (``REDIS_URL`` set): the Redis broker; separate worker processes
  run ``python manage.py rundramatiq --processes N --threads M``.
* Local mode (no ``REDIS_URL``): an in-memory StubBroker, and one Dramatiq
  worker on threads of the web process itself, so ``make run`` needs no other
  service. Messages live in that process's memory: a restart drops queued jobs,
  which is why work that matters is recorded in the database first and only
  announced through the queue.

Local mode also runs the scheduler (tinko/scheduler.py) on a thread there;
production runs ``python manage.py run_scheduler`` as its own process.

``tinko/wsgi.py`` and ``tinko/asgi.py`` call :func:`autostart_inprocess_worker`;
runserver, gunicorn and ASGI servers import them, management commands and the
test suite do not start a worker through it.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from pathlib import Path

import dramatiq
from dramatiq.brokers.stub import StubBroker
from django.conf import settings

from tinko.logging import request_id_var

logger = logging.getLogger(__name__)


def send_safely(actor: dramatiq.Actor, *args, delay: int | None = None) -> bool:
    """Enqueue ``actor(*args)``; when the broker is down, log it and return False instead of raising.

    For enqueues whose work is recorded in the database first: a periodic sweep
    finds what was never sent (stuck e-mails and messages, due webhook
    deliveries, leased attempts), so a Redis outage delays work but never fails
    the request or transaction that caused it.
    """
    try:
        if delay:
            actor.send_with_options(args=args, delay=delay)
        else:
            actor.send(*args)
        return True
    except Exception:
        logger.warning("Could not enqueue %s; a periodic sweep sends it later", actor.actor_name, exc_info=True)
        return False


class RequestIDPropagation(dramatiq.Middleware):
    """Carry the request id of whoever enqueued a job into the job's log lines.

    A job's logs then join the request that caused it (search one id, find the
    signup and the verification e-mail it queued). Retries keep the original id.
    """

    def before_enqueue(self, broker, message, delay):
        request_id = request_id_var.get()
        if request_id != "-":
            message.options.setdefault("request_id", request_id)

    def before_process_message(self, broker, message):
        request_id_var.set(message.options.get("request_id", "-"))

    def after_process_message(self, broker, message, *, result=None, exception=None):
        request_id_var.set("-")

    after_skip_message = after_process_message


# Milliseconds a stopping worker waits for jobs in progress. Short: the queue is
# in memory and dies with the process anyway, and a developer's Ctrl-C or an
# autoreload should not hang.
STOP_TIMEOUT_MS = 5_000

_lock = threading.Lock()
_worker: dramatiq.Worker | None = None
# The process that owns _worker: after a fork the child inherits the variable
# but not the threads, and must be free to start its own.
_worker_pid: int | None = None
_atexit_registered = False


def start_inprocess_worker(*, broker: dramatiq.Broker | None = None) -> dramatiq.Worker | None:
    """Start this process's in-process worker for a StubBroker, at most once; return it.

    ``broker`` defaults to the configured one. Returns None (and starts
    nothing) for any other broker: real brokers have their own worker processes.
    Safe to call from several threads; later calls return the running worker.
    """
    global _worker, _worker_pid, _atexit_registered
    broker = broker if broker is not None else dramatiq.get_broker()
    if not isinstance(broker, StubBroker):
        return None
    with _lock:
        if _worker is not None and _worker_pid == os.getpid():
            return _worker
        threads = settings.TINKO_INPROCESS_WORKER_THREADS
        worker = dramatiq.Worker(broker, worker_threads=threads)
        worker.start()
        _worker, _worker_pid = worker, os.getpid()
        if not _atexit_registered:
            atexit.register(stop_inprocess_worker)
            _atexit_registered = True
    logger.info("In-process background worker started (%d threads, pid %d)", threads, os.getpid())
    return worker


def stop_inprocess_worker() -> None:
    """Stop this process's in-process worker, if it runs (registered with atexit)."""
    global _worker, _worker_pid
    with _lock:
        worker, owner = _worker, _worker_pid
        _worker, _worker_pid = None, None
    if worker is not None and owner == os.getpid():
        worker.stop(timeout=STOP_TIMEOUT_MS)
        # The worker leaves its middleware on the broker; a later worker on the
        # same broker would otherwise receive every queue declaration twice.
        worker.broker.middleware[:] = [m for m in worker.broker.middleware if getattr(m, "worker", None) is not worker]
        logger.info("In-process background worker stopped")


def inprocess_worker() -> dramatiq.Worker | None:
    """The worker started in this process, if any."""
    with _lock:
        return _worker if _worker_pid == os.getpid() else None


def runs_a_server(argv: list[str] | None = None) -> bool:
    """Whether the process with this command line serves HTTP and so runs the in-process worker.

    ``argv`` defaults to this process's, and then the test suite never counts:
    tests run jobs explicitly (the ``run_jobs`` fixture). Management commands
    other than ``runserver`` are short-lived; worker threads there would only
    delay their exit and drop what they queued. Anything else that imports
    tinko.wsgi/asgi is a server (gunicorn, uvicorn, …).
    """
    if argv is None:
        if "pytest" in sys.modules:
            return False
        argv = sys.argv
    if not argv:
        return True
    program = Path(argv[0])
    runs_django_admin = program.name in {"manage.py", "django-admin", "django-admin.py"} or (
        program.name == "__main__.py" and program.parent.name == "django"  # python -m django
    )
    if runs_django_admin:
        return len(argv) > 1 and argv[1] == "runserver"
    return True


_scheduler: tuple[threading.Thread, threading.Event, int] | None = None


def start_inprocess_scheduler(*, broker: dramatiq.Broker | None = None) -> threading.Thread | None:
    """Local mode's scheduler: a daemon thread ticking like ``manage.py run_scheduler``, at most once per process."""
    global _scheduler
    from tinko import scheduler

    broker = broker if broker is not None else dramatiq.get_broker()
    if not isinstance(broker, StubBroker):
        return None
    with _lock:
        if _scheduler is not None and _scheduler[2] == os.getpid():
            return _scheduler[0]
        stop = threading.Event()
        thread = threading.Thread(
            target=scheduler.run_forever,
            kwargs={"interval": settings.TINKO_SCHEDULER_TICK, "stop": stop},
            name="tinko-scheduler",
            daemon=True,
        )
        thread.start()
        _scheduler = (thread, stop, os.getpid())
    atexit.register(stop_inprocess_scheduler)
    logger.info("In-process scheduler started (tick %s s)", settings.TINKO_SCHEDULER_TICK)
    return thread


def stop_inprocess_scheduler() -> None:
    global _scheduler
    with _lock:
        current, _scheduler = _scheduler, None
    if current is not None and current[2] == os.getpid():
        current[1].set()
        current[0].join(timeout=STOP_TIMEOUT_MS / 1000)


def autostart_inprocess_worker() -> dramatiq.Worker | None:
    """Called by the WSGI/ASGI modules: start the in-process worker and scheduler when serving in local mode."""
    if not runs_a_server():
        return None
    worker = start_inprocess_worker()
    if worker is not None:
        start_inprocess_scheduler()
    return worker
