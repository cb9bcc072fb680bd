"""The Redis cache reuses one client object per connection pool instead of building one per operation."""

from __future__ import annotations

import os

import pytest

from tinko.cache import FallbackRedisCache


@pytest.fixture
def redis_cache():
    url = os.environ.get("CACHE_URL")
    if not url:
        pytest.fail("the suite runs with CACHE_URL (Redis)")
    return FallbackRedisCache(url, {"KEY_PREFIX": "test-client-reuse"})


def test_operations_share_one_redis_client_per_pool_and_still_work(redis_cache, monkeypatch):
    import redis

    made = []
    init = redis.Redis.__init__

    def counting(self, *args, **kwargs):
        made.append(self)
        init(self, *args, **kwargs)

    monkeypatch.setattr(redis.Redis, "__init__", counting)
    redis_cache.delete("k")
    assert redis_cache.add("k", 1, timeout=10) is True
    assert redis_cache.add("k", 2, timeout=10) is False
    assert redis_cache.get("k") == 1
    assert redis_cache.count("hits", timeout=10) == 1
    assert redis_cache.count("hits", timeout=10) == 2
    redis_cache.delete_many(["k", "hits"])
    # Reads and writes use the same pool for a single server: one client for all eight operations.
    assert len(made) == 1
    assert redis_cache._cache.get_client(write=True) is made[0]
