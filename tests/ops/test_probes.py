"""/healthz (process alive) and /readyz (database, broker and cache reachable)."""

from __future__ import annotations

import json
import os
import socket

import pytest
from django.test import Client

from tests.ops.procs import DJANGO_SETUP, clean_env, run_python


def closed_port() -> int:
    # Bind and release: nothing listens there for the length of the test.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_healthz_answers_without_touching_the_database(client):
    # No db fixture: pytest-django makes any query fail, which would turn this into a 500.
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_probes_are_served_over_plain_http_while_everything_else_redirects(settings, db):
    settings.SECURE_SSL_REDIRECT = True
    client = Client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    response = client.get("/accounts/login/")
    assert response.status_code == 301
    assert response["Location"].startswith("https://")


def test_readyz_is_ok_when_database_broker_and_cache_answer(client, db):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok", "cache": "ok"}}


def test_suite_checks_readiness_against_real_redis(settings):
    # The readiness tests below only mean something when the broker check really pings Redis.
    assert settings.REDIS_URL.startswith("redis://")
    from django.core.cache import caches
    from django.core.cache.backends.redis import RedisCache

    assert isinstance(caches["default"], RedisCache)  # Django's, timed for the metrics (tinko.metrics.TimedRedisCache)


def test_readyz_is_503_when_redis_broker_is_unreachable(client, db, settings):
    settings.REDIS_URL = f"redis://:broker-pw@127.0.0.1:{closed_port()}/0"
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "error", "checks": {"database": "ok", "broker": "error", "cache": "ok"}}
    assert b"broker-pw" not in response.content


def test_readyz_is_503_when_cache_is_unreachable(client, db, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{closed_port()}/1",
        }
    }
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "broker": "ok", "cache": "error"}


def test_readyz_counts_the_in_process_broker_as_ready(client, db, settings):
    settings.REDIS_URL = ""
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["broker"] == "ok"


def test_readyz_is_503_when_database_is_unreachable():
    # A fresh process whose DATABASE_URL points at a port where no PostgreSQL listens;
    # broker and cache stay the suite's real Redis.
    url = f"postgres://tinko:db-secret-pw@127.0.0.1:{closed_port()}/tinko"
    env = clean_env(
        DJANGO_SETTINGS_MODULE="tests.settings",
        DATABASE_URL=url,
        REDIS_URL=os.environ.get("REDIS_URL", ""),
        CACHE_URL=os.environ.get("CACHE_URL", ""),
    )
    code = DJANGO_SETUP + (
        "from django.test import Client\n"
        "response = Client().get('/readyz')\n"
        "print(response.status_code)\n"
        "print(response.content.decode())\n"
    )
    result = run_python(code, env)
    assert result.returncode == 0, result.stderr
    status, body = result.stdout.strip().splitlines()[-2:]
    assert status == "503"
    assert json.loads(body) == {"status": "error", "checks": {"database": "error", "broker": "ok", "cache": "ok"}}
    assert "db-secret-pw" not in body
    # The reason is in the (private) log, for whoever investigates.
    assert "Readiness check 'database' failed" in result.stderr


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_probes_only_answer_safe_methods(client, method):
    assert getattr(client, method)("/healthz").status_code == 405
