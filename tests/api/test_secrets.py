"""The plaintext of an API key exists only in the response that created it."""

import pickle

from django.core.cache import cache
from django.db import connection

from tinko import services
from tinko.models import ApiKey, AuditEvent, hash_token


def _database_text():
    """Every value of every row of every table, as text."""
    texts = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                texts.extend(
                    bytes(value).decode("latin-1") if isinstance(value, (bytes, memoryview)) else str(value)
                    for value in row
                )
    return texts


def _cache_contents() -> list[bytes]:
    """Every key and value in the cache's Redis database (or local memory)."""
    backend = cache._cache if hasattr(cache, "_cache") else None
    if backend is not None and hasattr(backend, "get_client"):
        client = backend.get_client(write=False)
        contents = []
        for key in client.scan_iter("*"):
            contents.append(key)
            if client.type(key) == b"string":
                contents.append(client.get(key))
        return contents
    return [pickle.dumps(dict(cache._cache))]  # LocMemCache


def test_plaintext_key_is_not_stored_anywhere(client, owner, api_key):
    key, plaintext = api_key
    secret = plaintext.split("_", 2)[2]
    # Use it (last_used_at, throttle counters), then revoke it (audit).
    assert client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {plaintext}").status_code == 200
    services.revoke_api_key(api_key=key, actor=owner)

    for row in ApiKey.objects.values():
        assert all(secret not in str(value) for value in row.values())
    events = list(AuditEvent.objects.values())
    assert {e["action"] for e in events} >= {"apikey.created", "apikey.revoked"}
    for row in events:
        assert all(secret not in str(value) for value in row.values())
    assert all(secret not in text for text in _database_text())

    cached = _cache_contents()
    assert cached, "the request should have left a throttle counter in the cache"
    assert all(secret.encode() not in blob for blob in cached)


def test_only_the_hash_of_the_key_is_kept(api_key):
    key, plaintext = api_key

    key.refresh_from_db()
    assert key.key_hash == hash_token(plaintext)
    assert plaintext not in key.key_hash
