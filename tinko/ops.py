"""Liveness and readiness probes.

``/healthz`` answers whether this process serves HTTP at all, and touches
nothing else: a database outage must not make an orchestrator restart every
web container. ``/readyz`` answers whether this instance can do useful work
(database, broker and cache reachable), so a load balancer can stop sending it
traffic until they are.

Both bypass the HTTPS redirect (SECURE_REDIRECT_EXEMPT) but not host
validation: probes must send a Host header listed in ALLOWED_HOSTS (see the
web service's healthcheck in docker-compose.yml).
"""

from __future__ import annotations

import logging
import threading
import uuid

import redis
from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connections
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

logger = logging.getLogger(__name__)

# Seconds a Redis probe may take; kept short so /readyz answers within a
# typical probe timeout even when every dependency is down.
REDIS_PROBE_TIMEOUT = 2

_redis_clients: dict[str, redis.Redis] = {}
_redis_clients_lock = threading.Lock()


def _redis_client(url: str) -> redis.Redis:
    # One pool per URL for the life of the process, not a new connection per probe.
    with _redis_clients_lock:
        client = _redis_clients.get(url)
        if client is None:
            client = _redis_clients[url] = redis.Redis.from_url(
                url, socket_connect_timeout=REDIS_PROBE_TIMEOUT, socket_timeout=REDIS_PROBE_TIMEOUT
            )
        return client


def check_database() -> None:
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def check_broker() -> None:
    # Without REDIS_URL the broker lives in this process (local mode): if we can
    # answer, it can take messages.
    if settings.REDIS_URL:
        _redis_client(settings.REDIS_URL).ping()


def check_cache() -> None:
    # A unique key per probe: concurrent probes must not read each other's value.
    key = f"readyz:{uuid.uuid4().hex}"
    value = uuid.uuid4().hex
    cache.set(key, value, timeout=30)
    try:
        if cache.get(key) != value:
            raise RuntimeError("the cache did not return the value just stored")
    finally:
        cache.delete(key)


CHECKS = {"database": check_database, "broker": check_broker, "cache": check_cache}


def run_checks() -> tuple[bool, dict[str, str]]:
    """Run every readiness check: (all ok, name → "ok" | "error"). Details go to the log only."""
    results = {}
    for name, check in CHECKS.items():
        try:
            check()
        except Exception:
            # Details go to the (private) log only: answers may be public and
            # exception texts may name hosts, users or URLs.
            logger.warning("Readiness check %r failed", name, exc_info=True)
            results[name] = "error"
        else:
            results[name] = "ok"
    return all(result == "ok" for result in results.values()), results


@never_cache
@require_safe
def healthz(request):
    return JsonResponse({"status": "ok"})


@never_cache
@require_safe
def readyz(request):
    ready, results = run_checks()
    return JsonResponse({"status": "ok" if ready else "error", "checks": results}, status=200 if ready else 503)
