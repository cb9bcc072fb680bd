"""Fixed-window request counters for every public endpoint, shared through the cache (Redis).

One counter per (scope, caller, window), bumped with an atomic increment, so
concurrent requests on several processes never slip past the limit. A client
may burst up to twice the rate across a window boundary, which a limit meant
to protect capacity tolerates.

When the cache cannot be reached the counters live in this process instead
(each process then allows the full rate), and the cache is left alone for a
few seconds: a request must not wait on a dead Redis, and the database, not
the cache, is the source of truth. Scopes and their settings:

================  =========================  ===========================================
scope             setting                    counts
================  =========================  ===========================================
``api_key``       ``TINKO_API_RATE``         API requests per key (per address without one)
``webhook``       ``TINKO_WEBHOOK_RATE``     PSP, ESP and Twilio webhook requests per address
``pay``           ``TINKO_PAY_RATE``         pay-page requests per address
``preview``       ``TINKO_PREVIEW_RATE``     template previews and tests per user
================  =========================  ===========================================

Sign-in and sign-up are limited by django-allauth (``ACCOUNT_RATE_LIMITS``).
"""

from __future__ import annotations

import logging
import threading
import time

from django.core.cache import cache

from tinko.rates import parse_rate

logger = logging.getLogger(__name__)

# Seconds the cache is skipped after it failed once.
CACHE_RETRY_SECONDS = 5
# Per-process counters kept at most (old windows are dropped first).
LOCAL_MAX_KEYS = 50_000

_local: dict[str, int] = {}
_local_lock = threading.Lock()
_cache_down_until = 0.0


def _count_in_cache(key: str, timeout: int) -> int:
    # The counter outlives its window by a little so that a late increment never
    # finds it gone; it is never read after the window ends.
    if hasattr(cache, "count"):  # tinko.cache.FallbackRedisCache: one round trip
        return cache.count(key, timeout)
    cache.add(key, 0, timeout=timeout)
    try:
        return cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.add(key, 1, timeout=timeout)
        return 1


def _count_here(key: str, window: int) -> int:
    with _local_lock:
        if len(_local) >= LOCAL_MAX_KEYS:
            suffix = f":{window}"
            for stale in [k for k in _local if not k.endswith(suffix)]:
                del _local[stale]
            if len(_local) >= LOCAL_MAX_KEYS:
                _local.clear()
        count = _local.get(key, 0) + 1
        _local[key] = count
        return count


def count_hit(ident: str, *, limit: int, duration: int, now: float | None = None) -> tuple[bool, float]:
    """Count one hit for ``ident`` in the current window; (still within limit?, seconds to the next window)."""
    global _cache_down_until
    now = time.time() if now is None else now
    window = int(now // duration)
    key = f"throttle:{ident}:{duration}:{window}"
    count = None
    if time.monotonic() >= _cache_down_until:
        try:
            count = _count_in_cache(key, duration + 5)
        except Exception:
            _cache_down_until = time.monotonic() + CACHE_RETRY_SECONDS
            logger.warning("Rate-limit cache unreachable; counting in this process for %d s", CACHE_RETRY_SECONDS,
                           exc_info=True)
    if count is None:
        count = _count_here(key, window)
    return count <= limit, (window + 1) * duration - now


def hit(scope: str, ident: str, rate: str) -> tuple[bool, float]:
    """Count one request of ``ident`` (an address, a key, a user) against ``rate`` ("120/min") in ``scope``."""
    limit, duration = parse_rate(rate)
    return count_hit(f"{scope}:{ident}", limit=limit, duration=duration)


def exceeded(scope: str, ident: str, rate: str) -> bool:
    """Whether ``ident`` already used up ``rate`` in the current window (counts nothing)."""
    limit, duration = parse_rate(rate)
    window = int(time.time() // duration)
    key = f"throttle:{scope}:{ident}:{duration}:{window}"
    if time.monotonic() >= _cache_down_until:
        try:
            return (cache.get(key) or 0) >= limit
        except Exception:
            pass
    with _local_lock:
        return _local.get(key, 0) >= limit


def reset_local() -> None:
    """Forget the per-process counters and the cache's outage (tests)."""
    global _cache_down_until
    with _local_lock:
        _local.clear()
    _cache_down_until = 0.0
