"""gunicorn settings for `gunicorn tinko.wsgi` (the Docker image's command).

Every value can be changed from the environment (listed in .env.example).

Gunicorn must sit behind a reverse proxy that terminates TLS and *overwrites*
X-Forwarded-Proto: Django trusts that header (SECURE_PROXY_SSL_HEADER) to know
a request came over HTTPS. FORWARDED_ALLOW_IPS (read by gunicorn itself,
default 127.0.0.1,::1) lists the proxies whose X-Forwarded-* gunicorn honours;
set it to the proxy's address, or "*" when only the proxy can reach this port
(e.g. a private container network).
"""

import multiprocessing
import os
import shutil
import tempfile


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    try:
        return int(raw) if raw else default
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not an integer") from None


bind = f"0.0.0.0:{_int('PORT', 8000)}"

def _cpus() -> int:
    """CPUs this container may use: its CPU set, capped by a cgroup v2 quota (cpu.max).

    ``cpu_count()`` is the host's, which overstates a container limited to 2 of 32.
    """
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        count = multiprocessing.cpu_count()
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            count = min(count, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, count)


# Processes × threads = concurrent requests per container; each thread may hold
# a database connection (CONN_MAX_AGE), so size PostgreSQL's max_connections for it.
#
# One process per usable CPU (at least 2, so one busy process never leaves the
# port unserved), 4 threads each. Each process runs Python one thread at a time
# (the GIL), so processes beyond the CPUs only take turns on the same cores
# while costing ~120 MB and `threads` database connections each; the threads
# are what keep a CPU busy while a request waits on PostgreSQL, Redis or a PSP.
# (2 × CPUs + 1 is the rule for single-threaded sync workers, not gthread.)
# On 2 CPUs: 2 × 4 = 8 requests at once, what the webhook benchmark measures.
workers = _int("WEB_CONCURRENCY", max(2, min(_cpus(), 8)))
worker_class = "gthread"
threads = _int("GUNICORN_THREADS", 4)
timeout = _int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _int("GUNICORN_KEEPALIVE", 5)
# Recycle workers now and then so a slow leak never takes a container down.
max_requests = _int("GUNICORN_MAX_REQUESTS", 2000)
max_requests_jitter = max_requests // 10

# Not preloaded: in local mode (no REDIS_URL) importing tinko.wsgi starts the
# in-process worker's threads, and fork() would not carry them into workers.
preload_app = False

# Heartbeat files on tmpfs: a container's overlay filesystem can stall them and
# get healthy workers killed.
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"

# Prometheus metrics (tinko/metrics.py): each worker process writes its values to
# files in one directory, and GET /metrics, whichever worker answers it, adds up
# all of them. Set here, in the master, so that every worker inherits it before it
# imports prometheus-client. A directory given in PROMETHEUS_MULTIPROC_DIR is
# emptied at start (values of an earlier run's processes must not be added in);
# otherwise a fresh one is made, on tmpfs where there is one, and removed at exit.
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
_own_metrics_dir = not _metrics_dir
if _own_metrics_dir:
    _metrics_dir = tempfile.mkdtemp(prefix="tinko-metrics-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir


def on_starting(server):
    from tinko import metrics_store

    metrics_store.clear(_metrics_dir)


def post_worker_init(worker):
    # The app is loaded: keep its long-lived objects out of the garbage collector's walks, and let the
    # request threads (started after this) share one malloc arena (tinko/wsgi.py).
    from tinko.wsgi import freeze_startup_objects, share_one_malloc_arena

    freeze_startup_objects()
    share_one_malloc_arena()


def child_exit(server, worker):
    # The exited worker's counters keep counting (in one archive file, so that
    # replaced workers do not pile up files); its "live" gauges stop.
    from prometheus_client import multiprocess

    from tinko import metrics_store

    multiprocess.mark_process_dead(worker.pid, _metrics_dir)
    metrics_store.archive_dead_process(worker.pid, _metrics_dir)


def on_exit(server):
    if _own_metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)


# gunicorn 23+ opens a control socket under $HOME by default; nothing here uses
# it, and the image's user has no writable home.
control_socket_disable = True

# The access log is written by tinko.middleware.RequestIDMiddleware (JSON, with
# the request id and without query strings); gunicorn's own stays off.
accesslog = None

if os.environ.get("LOG_FORMAT", "json") == "json":
    # gunicorn's own messages (boot, worker timeouts) as JSON lines like the app's.
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {
                "()": "tinko.logging.JsonFormatter",
                "fmt": "%(levelname)s %(name)s %(message)s",
                "rename_fields": {"levelname": "level", "name": "logger"},
                "timestamp": "time",
            }
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "root": {"level": "INFO", "handlers": ["console"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["console"], "propagate": False},
            # Off: it would log query strings (see accesslog above).
            "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": False},
        },
    }
