"""The cache Tinko uses with Redis: Django's own (timed for /metrics), answering from this process while Redis is unreachable.

The cache holds only what can be rebuilt (rate-limit counters, allauth's
throttles, the classifier's version token), never the source of truth. So
when Redis cannot be reached, each call is answered by a local-memory cache in
this process instead of raising (sign-in, sign-up and the API would otherwise
answer 500), and Redis is left alone for a few seconds before it is tried
again. Rate limits then count per process, as they do without REDIS_URL.
``/readyz`` still reports the cache down (:meth:`FallbackRedisCache.ping`).
"""

from __future__ import annotations

import logging
import time

from django.core.cache.backends.locmem import LocMemCache

from tinko.metrics import TimedRedisCache

logger = logging.getLogger(__name__)

RETRY_SECONDS = 5


class FallbackRedisCache(TimedRedisCache):
    # When Redis was last found unreachable, per server and shared by the process's threads
    # (Django makes one cache object per thread): one failure spares the others the attempt.
    _down_until: dict[str, float] = {}

    def __init__(self, server, params):
        super().__init__(server, params)
        self._server = str(server)
        # Django makes one cache object per thread; the fallback's name makes its memory the process's.
        self._fallback = LocMemCache(f"tinko-fallback:{server}", {"TIMEOUT": params.get("TIMEOUT", 300),
                                                                  "OPTIONS": {"MAX_ENTRIES": 10_000}})

    def ping(self) -> None:
        """Raise unless Redis itself answers (for /readyz; the fallback does not count)."""
        self._cache.get_client(write=True).ping()

    def _call(self, name: str, *args, **kwargs):
        import redis

        if time.monotonic() >= self._down_until.get(self._server, 0.0):
            try:
                return getattr(super(), name)(*args, **kwargs)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                self._down_until[self._server] = time.monotonic() + RETRY_SECONDS
                logger.warning("Cache unreachable; answering from this process for %d s", RETRY_SECONDS, exc_info=True)
        return getattr(self._fallback, name)(*args, **kwargs)

    def add(self, *args, **kwargs):
        return self._call("add", *args, **kwargs)

    def get(self, *args, **kwargs):
        return self._call("get", *args, **kwargs)

    def set(self, *args, **kwargs):
        return self._call("set", *args, **kwargs)

    def touch(self, *args, **kwargs):
        return self._call("touch", *args, **kwargs)

    def delete(self, *args, **kwargs):
        return self._call("delete", *args, **kwargs)

    def get_many(self, *args, **kwargs):
        return self._call("get_many", *args, **kwargs)

    def has_key(self, *args, **kwargs):
        return self._call("has_key", *args, **kwargs)

    def incr(self, *args, **kwargs):
        return self._call("incr", *args, **kwargs)

    def set_many(self, *args, **kwargs):
        return self._call("set_many", *args, **kwargs)

    def delete_many(self, *args, **kwargs):
        return self._call("delete_many", *args, **kwargs)

    def clear(self):
        self._fallback.clear()
        return self._call("clear")

    def count(self, key: str, timeout: int) -> int:
        """Add one to the counter ``key`` (created with ``timeout`` seconds to live); its new value.

        One round trip to Redis (SET NX with the expiry, then INCR, pipelined) where
        ``add`` then ``incr`` take three: every rate-limited request does this.
        """
        def in_redis():
            redis_key = self.make_and_validate_key(key)
            pipe = self._cache.get_client(redis_key, write=True).pipeline(transaction=False)
            pipe.set(redis_key, 0, ex=timeout, nx=True)
            pipe.incr(redis_key)
            return pipe.execute()[1]

        import redis

        if time.monotonic() >= self._down_until.get(self._server, 0.0):
            try:
                return in_redis()
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                self._down_until[self._server] = time.monotonic() + RETRY_SECONDS
                logger.warning("Cache unreachable; answering from this process for %d s", RETRY_SECONDS, exc_info=True)
        self._fallback.add(key, 0, timeout=timeout)
        return self._fallback.incr(key)

