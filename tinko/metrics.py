"""Prometheus metrics: every metric Tinko exports is defined here, with the small functions the code calls.

Where each process serves its metrics (docs/operations.md has the whole picture):

* **web** (gunicorn, several worker processes): ``GET /metrics`` on the web port, only
  with ``Authorization: Bearer <TINKO_METRICS_TOKEN>`` (404 while no token is set).
  prometheus-client runs in multiprocess mode: each gunicorn worker writes its
  values to files in ``PROMETHEUS_MULTIPROC_DIR`` (gunicorn.conf.py makes a fresh
  one) and a scrape adds them up, so any worker answers for all. The scrape also
  reads a few gauges straight from the database and the broker
  (:class:`StateCollector`, sources registered by the apps): they are computed
  per scrape, never stored in those files.
* **worker** (``manage.py rundramatiq``): Dramatiq's own Prometheus middleware
  (:class:`WorkerMetrics`) records Dramatiq's metrics and these in every worker
  process; a separate listener (``TINKO_WORKER_METRICS_PORT``, :func:`worker_listener`)
  serves them with ``/healthz`` and ``/readyz`` for Kubernetes.
* **scheduler** (``manage.py run_scheduler``): a separate listener too
  (``TINKO_SCHEDULER_METRICS_PORT``), with its probes.

The listeners have no authentication: they must be reachable from the Prometheus
server only (in Kubernetes a NetworkPolicy; with Compose they are not published).

Labels are small, fixed sets of Tinko's own values (provider, category, channel,
status, queue, currency, the URL pattern): never an organization, a customer, an
address, a reference, a token or an amount.

prometheus-client decides when it is first imported whether values live in
per-process files. Dramatiq's worker processes get their directory only after
they boot, which is after Django (and so this module) loaded; so this module
imports prometheus-client, and makes the metrics, on first use only.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import threading
from collections import Counter as Tally
from time import perf_counter

import dramatiq
from django.conf import settings
from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from django.db import transaction
from django.http import HttpResponse
from dramatiq.middleware.prometheus import Prometheus

logger = logging.getLogger(__name__)

# Seconds: requests and PSP calls (a PSP may take up to TINKO_PSP_TIMEOUT).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Seconds: one SQL statement or one cache operation.
FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
# Seconds from a webhook's arrival to its answer being recorded.
LAG_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_STATEMENTS = ("select", "insert", "update", "delete", "with", "begin", "commit", "savepoint", "release", "rollback")


class _Metrics:
    """The metric objects; made once per process, on first use (see the module's docstring)."""

    def __init__(self):
        from prometheus_client import Counter, Histogram

        # Web
        self.http_requests = Counter(
            "tinko_http_requests_total", "HTTP requests answered, by view (URL name), method and status.",
            ["view", "method", "status"],
        )
        self.http_duration = Histogram(
            "tinko_http_request_duration_seconds", "Time to answer an HTTP request, by view and method.",
            ["view", "method"], buckets=LATENCY_BUCKETS,
        )
        self.db_duration = Histogram(
            "tinko_db_query_duration_seconds", "Time of one SQL statement, by its first keyword.",
            ["statement"], buckets=FAST_BUCKETS,
        )
        self.db_errors = Counter(
            "tinko_db_query_errors_total", "SQL statements that raised, by their first keyword.", ["statement"]
        )
        self.cache_duration = Histogram(
            "tinko_cache_operation_duration_seconds", "Time of one cache operation (Redis).", ["operation"],
            buckets=FAST_BUCKETS,
        )
        self.cache_operations = Counter(
            "tinko_cache_operations_total", "Cache operations by outcome (hit, miss, ok, error).", ["operation", "outcome"]
        )
        # Recovery engine
        self.failures = Counter(
            "tinko_failure_events_total", "Failure events recorded (duplicates excluded), by source, provider and category.",
            ["source", "provider", "category"],
        )
        self.duplicates = Counter(
            "tinko_failure_reports_duplicate_total", "Failure reports absorbed as duplicates of an event already recorded.",
            ["source"],
        )
        self.attempts = Counter(
            "tinko_recovery_attempts_total",
            "Recovery attempts run, by kind (auto_retry, notification) and outcome (succeeded, failed, skipped, "
            "cancelled, deferred, retry_later).",
            ["kind", "outcome"],
        )
        self.claims = Counter(
            "tinko_recovery_attempt_claims_total",
            "Attempts the scheduler claimed for the workers: due (first claim) or lease_expired (claimed again "
            "after a lost message or a dead worker).",
            ["reason"],
        )
        self.ticks = Histogram(
            "tinko_scheduler_tick_duration_seconds", "Time of one scheduler tick.", buckets=LATENCY_BUCKETS
        )
        self.recovered_payments = Counter(
            "tinko_recovered_payments_total", "Payments recovered, by the channel that brought the money back.",
            ["channel"],
        )
        self.recovered_value = Counter(
            "tinko_recovered_value_total",
            "Value recovered in the currency's major unit (e.g. euros), by currency; never add up two currencies.",
            ["currency"],
        )
        # PSPs and their webhooks
        self.psp_requests = Counter(
            "tinko_psp_requests_total",
            "Calls to a PSP by provider, operation and outcome (ok, declined, error).",
            ["provider", "operation", "outcome"],
        )
        self.psp_duration = Histogram(
            "tinko_psp_request_duration_seconds", "Time of a call to a PSP, by provider and operation.",
            ["provider", "operation"], buckets=LATENCY_BUCKETS,
        )
        self.inbox = Counter(
            "tinko_inbox_messages_total",
            "PSP webhook requests by provider and what became of them (processed, duplicate, ignored, rejected, failed).",
            ["provider", "status"],
        )
        self.inbox_lag = Histogram(
            "tinko_inbox_processing_lag_seconds", "Time from a webhook's arrival to its outcome being recorded.",
            ["provider"], buckets=LAG_BUCKETS,
        )
        # Messages to customers, webhooks to merchants
        self.notifications = Counter(
            "tinko_notifications_total",
            "Messages to customers by channel and outcome (sent, failed, retrying, suppressed, deferred, delivered, bounced).",
            ["channel", "outcome"],
        )
        self.merchant_webhooks = Counter(
            "tinko_merchant_webhook_deliveries_total",
            "Deliveries of webhooks to merchants by outcome (succeeded, retrying, failed).", ["outcome"],
        )
        self.endpoints_disabled = Counter(
            "tinko_merchant_webhook_endpoints_disabled_total",
            "Merchant webhook endpoints Tinko disabled after every retry of a delivery failed.",
        )


_lock = threading.Lock()
_made: _Metrics | None = None


def _m() -> _Metrics:
    global _made
    if _made is None:
        with _lock:
            if _made is None:
                _made = _Metrics()
    return _made


def _after_commit(fn) -> None:
    """Count when the transaction that did it commits (runs at once outside a transaction): a rollback counts nothing."""
    transaction.on_commit(fn)


# --- Recording: one small call where the thing happens ------------------------------------------------


def failures_recorded(results, *, source: str) -> None:
    """Ingestion recorded these reports (recovery.ingestion.IngestResult)."""
    fresh, duplicates = Tally(), 0
    for result in results:
        if result.duplicate:
            duplicates += 1
        else:
            fresh[(result.payment.provider or "other", result.event.category or "unknown")] += 1
    if not fresh and not duplicates:
        return

    def count():
        metrics = _m()
        for (provider, category), n in fresh.items():
            metrics.failures.labels(source, provider, category).inc(n)
        if duplicates:
            metrics.duplicates.labels(source).inc(duplicates)

    _after_commit(count)


def attempt_finished(kind: str, status: str) -> None:
    """A recovery attempt reached ``status``; ``scheduled`` means put back for later (a re-charge whose
    outcome the PSP did not give: ``retry_later``; a message held by quiet hours or the cap: ``deferred``)."""
    if status == "scheduled":
        outcome = "retry_later" if kind == "auto_retry" else "deferred"
    else:
        outcome = str(status)
    _after_commit(lambda: _m().attempts.labels(str(kind), outcome).inc())


def attempts_claimed(count: int, *, reason: str) -> None:
    if count:
        _after_commit(lambda: _m().claims.labels(reason).inc(count))


def payment_recovered(*, amount: int, currency: str, channel: str) -> None:
    from tinko.currencies import minor_unit_exponent

    try:
        value = amount / 10 ** minor_unit_exponent(currency)
    except Exception:  # an unknown code never reaches here (validated on input); count it in minor units then
        value = float(amount)

    def count():
        metrics = _m()
        metrics.recovered_payments.labels(channel or "none").inc()
        metrics.recovered_value.labels(currency).inc(value)

    _after_commit(count)


def inbox_message(*, provider: str, status: str, received_at, processed_at) -> None:
    lag = max((processed_at - received_at).total_seconds(), 0.0) if received_at and processed_at else None

    def count():
        metrics = _m()
        metrics.inbox.labels(provider, status).inc()
        if lag is not None:
            metrics.inbox_lag.labels(provider).observe(lag)

    _after_commit(count)


def notification(channel: str, outcome: str) -> None:
    _after_commit(lambda: _m().notifications.labels(channel, outcome).inc())


def merchant_webhook_delivery(outcome: str) -> None:
    _after_commit(lambda: _m().merchant_webhooks.labels(outcome).inc())


def merchant_webhook_endpoint_disabled() -> None:
    _after_commit(lambda: _m().endpoints_disabled.inc())


# PaymentProvider methods that call the PSP, and their name in the metrics. (``interpret_event``
# is left out: it reads the PSP only for some events, and its ValueError means "nothing to use".)
PSP_OPERATIONS = {
    "charge_off_session": "charge",
    "fetch_payment_state": "fetch_payment_state",
    "create_checkout": "create_checkout",
    "confirm_checkout": "confirm_checkout",
    "test_connection": "test_connection",
}


def _timed_psp_method(method, operation: str):
    import functools

    @functools.wraps(method)
    def timed(self, *args, **kwargs):
        started = perf_counter()
        outcome = "error"
        try:
            result = method(self, *args, **kwargs)
            status = getattr(result, "status", "")
            outcome = "error" if status == "error" else "declined" if status == "declined" else "ok"
            return result
        finally:
            provider = getattr(self, "name", "") or "unknown"
            metrics = _m()
            metrics.psp_duration.labels(provider, operation).observe(perf_counter() - started)
            metrics.psp_requests.labels(provider, operation, outcome).inc()

    timed.tinko_timed = True
    return timed


def time_psp_calls(provider_class) -> None:
    """Wrap the PSP-calling methods ``provider_class`` defines, so that each call is timed and counted.

    An exception, or a charge answered ``status="error"``, counts as ``error``; a decline as ``declined``.
    """
    for method_name, operation in PSP_OPERATIONS.items():
        method = provider_class.__dict__.get(method_name)
        if callable(method) and not getattr(method, "tinko_timed", False):
            setattr(provider_class, method_name, _timed_psp_method(method, operation))


# --- HTTP, database, cache --------------------------------------------------------------------------


class MetricsMiddleware:
    """Times every request, and answers ``GET /metrics`` itself.

    First in MIDDLEWARE: the time covers the whole stack, and ``/metrics`` is
    answered before host validation and the HTTPS redirect, because Prometheus
    scrapes each pod by its address, over plain HTTP inside the cluster. The
    bearer token is what protects it.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path == "/metrics":
            return metrics_view(request)
        started = perf_counter()
        response = self.get_response(request)
        elapsed = perf_counter() - started
        match = getattr(request, "resolver_match", None)
        view = (match.view_name or match.route) if match is not None else "unmatched"
        method = request.method if request.method in _METHODS else "other"
        metrics = _m()
        metrics.http_requests.labels(view, method, str(response.status_code)).inc()
        metrics.http_duration.labels(view, method).observe(elapsed)
        return response


def _statement(sql) -> str:
    head = sql.lstrip()[:9].lower() if isinstance(sql, str) else ""
    for keyword in _STATEMENTS:
        if head.startswith(keyword):
            return keyword
    return "other"


def _time_query(execute, sql, params, many, context):
    started = perf_counter()
    try:
        return execute(sql, params, many, context)
    except Exception:
        _m().db_errors.labels(_statement(sql)).inc()
        raise
    finally:
        _m().db_duration.labels(_statement(sql)).observe(perf_counter() - started)


def instrument_connection(sender=None, connection=None, **kwargs) -> None:
    """``connection_created`` receiver: time every statement run through the ORM or a cursor (not ``COPY``)."""
    if connection is not None and _time_query not in connection.execute_wrappers:
        connection.execute_wrappers.insert(0, _time_query)


def _timed_cache_operation(name: str, method):
    def call(self, *args, **kwargs):
        started = perf_counter()
        outcome = "ok"
        try:
            result = method(self, *args, **kwargs)
            if name == "get":
                default = args[1] if len(args) > 1 else kwargs.get("default")
                outcome = "miss" if result is default else "hit"
            return result
        except Exception:
            outcome = "error"
            raise
        finally:
            metrics = _m()
            metrics.cache_duration.labels(name).observe(perf_counter() - started)
            metrics.cache_operations.labels(name, outcome).inc()

    return call


def _reused_client(self, key=None, *, write=False):
    """One ``redis.Redis`` per connection pool, made once.

    Django's client builds a new ``redis.Redis`` (and its table of ~170 response
    callbacks) for every operation: about 0.1 ms of CPU each, three times per
    webhook (rate limit, account, inbox kick). The object holds no connection of
    its own (the pool does), and it is safe to share.
    """
    pool = self._get_connection_pool(write)
    clients = self.__dict__.setdefault("_tinko_clients", {})
    client = clients.get(id(pool))
    if client is None or client.connection_pool is not pool:
        client = clients[id(pool)] = self._client(connection_pool=pool)
    return client


TimedRedisCacheClient = type(
    "TimedRedisCacheClient", (RedisCacheClient,), {
        "get_client": _reused_client,
        **{name: _timed_cache_operation(name, getattr(RedisCacheClient, name))
           for name in ("get", "set", "add", "touch", "delete", "get_many", "has_key", "incr", "set_many", "delete_many")},
    },
)


class TimedRedisCache(RedisCache):
    """Django's Redis cache backend, each operation timed and counted (hits and misses for ``get``)."""

    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = TimedRedisCacheClient


# --- Scrape-time state from the database and the broker -------------------------------------------


_state_sources: list = []


def add_state_source(source) -> None:
    """Register ``source() -> [(name, help, value), ...]``: gauges read at each web scrape (apps register in ready())."""
    if source not in _state_sources:
        _state_sources.append(source)


class StateCollector:
    """Gauges read at scrape time: the recovery backlog (recovery/backlog.py registers it) and queue lengths.

    Each source is a few indexed queries or one Redis round trip. Nothing is
    written to the multiprocess files, so every web process answers the same
    and a dead process leaves nothing stale. A failing source is left out of
    that scrape (and logged) rather than failing the scrape.
    """

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        for source in _state_sources:
            try:
                values = source()
            except Exception:
                logger.warning("Metrics: reading %s failed", getattr(source, "__qualname__", source), exc_info=True)
                continue
            for name, help_text, value in values:
                yield GaugeMetricFamily(name, help_text, value=value)
        try:
            queues = _queue_lengths()
        except Exception:
            logger.warning("Metrics: reading queue lengths failed", exc_info=True)
        else:
            waiting = GaugeMetricFamily(
                "tinko_queue_messages", "Background jobs waiting in the broker, by queue (ready: now; delayed: later).",
                labels=["queue", "state"],
            )
            for (queue, state), value in sorted(queues.items()):
                waiting.add_metric([queue, state], value)
            yield waiting


def _queue_lengths() -> dict[tuple[str, str], int]:
    from dramatiq.brokers.redis import RedisBroker
    from dramatiq.brokers.stub import StubBroker

    broker = dramatiq.get_broker()
    queues = sorted(broker.get_declared_queues())
    if isinstance(broker, RedisBroker):
        pipe = broker.client.pipeline(transaction=False)
        for queue in queues:
            pipe.llen(f"{broker.namespace}:{queue}")
            pipe.llen(f"{broker.namespace}:{queue}.DQ")
        lengths = pipe.execute()
        return {
            (queue, state): int(lengths[2 * i + j]) for i, queue in enumerate(queues) for j, state in enumerate(("ready", "delayed"))
        }
    if isinstance(broker, StubBroker):
        out = {}
        for queue in queues:
            out[(queue, "ready")] = broker.queues[queue].qsize()
            out[(queue, "delayed")] = broker.queues[f"{queue}.DQ"].qsize() if f"{queue}.DQ" in broker.queues else 0
        return out
    return {}


# --- Exposition ------------------------------------------------------------------------------------


def render(*, with_state: bool) -> tuple[bytes, str]:
    """This process's metrics (or, in multiprocess mode, every process's), in Prometheus' text format."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

    _m()  # every metric exists from the first scrape on, even before its first event
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        from prometheus_client import multiprocess

        from tinko import metrics_store

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)
        with metrics_store.reading(directory):
            output = generate_latest(registry)
    else:
        output = generate_latest(REGISTRY)
    if with_state:
        state = CollectorRegistry(auto_describe=False)
        state.register(StateCollector())
        output += generate_latest(state)
    return output, CONTENT_TYPE_LATEST


def token_matches(header: str) -> bool:
    token = settings.TINKO_METRICS_TOKEN
    scheme, _, given = header.partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def metrics_view(request):
    """``GET /metrics``: 404 while TINKO_METRICS_TOKEN is unset, 401 without the right bearer token."""
    if not settings.TINKO_METRICS_TOKEN:
        return HttpResponse("Not found.\n", status=404, content_type="text/plain")
    if request.method not in ("GET", "HEAD"):
        return HttpResponse("Method not allowed.\n", status=405, content_type="text/plain", headers={"Allow": "GET, HEAD"})
    if not token_matches(request.META.get("HTTP_AUTHORIZATION", "")):
        return HttpResponse(
            "A bearer token is required.\n", status=401, content_type="text/plain",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    body, content_type = render(with_state=True)
    return HttpResponse(body, content_type=content_type, headers={"Cache-Control": "no-store"})


def serve(*, port: int, addr: str, alive, block: bool = False):
    """A separate listener for the worker and the scheduler: ``/metrics``, ``/healthz`` and ``/readyz``.

    ``alive()`` answers liveness (the process's own loop is working); readiness
    runs the same checks as the web's ``/readyz`` (database, broker, cache).
    No authentication: only Prometheus and the kubelet may reach it. Serves on a
    daemon thread, or in this thread when ``block``.
    """
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from tinko import ops

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/metrics":
                body, content_type, status = *render(with_state=False), 200
            elif self.path in ("/healthz", "/readyz"):
                if self.path == "/healthz":
                    ok = bool(alive())
                    answer = {"status": "ok" if ok else "error"}
                else:
                    ok, checks = ops.run_checks()
                    answer = {"status": "ok" if ok else "error", "checks": checks}
                body, content_type, status = json.dumps(answer).encode(), "application/json", 200 if ok else 503
            else:
                body, content_type, status = b"Not found.\n", "text/plain", 404
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):
            logger.debug("listener: " + format, *args)

    server = ThreadingHTTPServer((addr, port), Handler)
    server.daemon_threads = True
    logger.info("Metrics and probes served on %s:%s", addr, port)
    if block:
        server.serve_forever()
    else:
        threading.Thread(target=server.serve_forever, name="tinko-listener", daemon=True).start()
    return server


def _worker_processes_alive() -> bool:
    """In the worker's listener (a child of Dramatiq's main process): the main process and its workers run."""
    parent = os.getppid()
    if parent == 1:
        return False
    siblings = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent and int(pid) != os.getpid() and fields[0] not in ("Z", "X"):
            siblings += 1
    return siblings >= 1


def worker_listener():
    """Dramatiq fork function: the worker's listener, in its own process beside the worker processes.

    Replaces Dramatiq's exposition server (same metrics, from the same
    directory) and adds the probes Kubernetes needs.
    """
    from dramatiq.middleware.prometheus import DB_PATH

    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", DB_PATH)
    import django

    django.setup()
    serve(port=settings.TINKO_WORKER_METRICS_PORT, addr=settings.TINKO_METRICS_ADDR, alive=_worker_processes_alive,
          block=True)
    return 0


class WorkerMetrics(Prometheus):
    """Dramatiq's Prometheus middleware, active only in the processes ``rundramatiq`` starts.

    Dramatiq calls ``after_process_boot`` in its worker processes only; the web
    servers, the scheduler and local mode's in-process worker share the broker
    configuration but never boot this way, and there the middleware does nothing
    (its hooks would use metrics it never made). In the worker processes it also
    carries Tinko's own metrics: they are made on first use, after boot, in the
    same directory.
    """

    _booted = False

    def after_process_boot(self, broker):
        super().after_process_boot(broker)
        self._booted = True

    def after_worker_shutdown(self, broker, worker):
        if self._booted:
            super().after_worker_shutdown(broker, worker)

    def after_nack(self, broker, message):
        if self._booted:
            super().after_nack(broker, message)

    def after_enqueue(self, broker, message, delay):
        if self._booted:
            super().after_enqueue(broker, message, delay)

    def before_delay_message(self, broker, message):
        if self._booted:
            super().before_delay_message(broker, message)

    def before_process_message(self, broker, message):
        if self._booted:
            super().before_process_message(broker, message)

    def after_process_message(self, broker, message, *, result=None, exception=None):
        if self._booted:
            super().after_process_message(broker, message, result=result, exception=exception)

    after_skip_message = after_process_message

    @property
    def forks(self):
        return [worker_listener] if settings.TINKO_WORKER_METRICS_PORT else []


def time_tick():
    """Context manager timing one scheduler tick."""
    return _m().ticks.time()

