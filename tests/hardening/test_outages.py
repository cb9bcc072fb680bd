"""Outages: PostgreSQL down → fast JSON 503; Redis down → ingestion still 201; the scheduler's tick and
in-flight re-charges survive a failed enqueue or a dead worker.

The servers here are gunicorn processes with their own Redis (a redis-server on a
free port, stopped by the test) or a database address nothing listens on; the
shared PostgreSQL and Redis are never touched.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from recovery import dispatch, leases, runner
from recovery.models import AttemptStatus, FailureEvent, Payment, RecoveryAttempt
from tests.ops.procs import Gunicorn, free_port, request as _request
from tests.recovery.conftest import report
from tests.recovery.test_runner import card, due, ingest
from tests.recovery.conftest import api  # noqa: F401  (fixture)
from tinko import scheduler
from tinko.models import PeriodicJob


def test_postgresql_down_answers_a_fast_json_503_with_retry_after(tmp_path):
    server = Gunicorn(tmp_path, DATABASE_URL=f"postgres://postgres@127.0.0.1:{free_port()}/tinko")
    try:
        for method, path, headers in [
            ("GET", "/api/v1/me", {"Authorization": "Bearer tk_abcdefgh_" + "x" * 40}),
            ("POST", "/webhooks/stripe/acct123/", {"Content-Type": "application/json"}),
        ]:
            status, body, response_headers, elapsed = _request(server.port, method, path, b"{}" if method == "POST" else None,
                                                                headers)
            assert status == 503, (path, status, body[:300])
            assert response_headers["Retry-After"] == "5"
            assert json.loads(body)["error"]["type"] == "service_unavailable"
            assert b"psycopg" not in body and b"connection" not in body.lower()
            assert elapsed < 2, (path, elapsed)
        status, body, response_headers, _ = _request(server.port, "GET", "/console/",
                                                     headers={"Accept": "text/html", "Cookie": "sessionid=" + "a" * 32})
        assert status == 503 and b"Temporarily unavailable" in body and response_headers["Retry-After"] == "5"
    finally:
        server.stop()


@pytest.mark.django_db(transaction=True)
def test_redis_down_ingestion_keeps_answering_201_and_throttles_per_process(tmp_path, api_key, default_rules):
    redis_server = shutil.which("redis-server")
    redis_port = free_port()
    redis = subprocess.Popen([redis_server, "--port", str(redis_port), "--save", "", "--appendonly", "no"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = connection.settings_dict
    url = f"redis://127.0.0.1:{redis_port}"
    server = None
    try:
        server = Gunicorn(tmp_path, DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
                          REDIS_URL=f"{url}/0", CACHE_URL=f"{url}/1", TINKO_API_RATE="11/min")
        headers = {"Authorization": f"Bearer {api_key[1]}", "Content-Type": "application/json"}
        status, *_ = _request(server.port, "POST", "/api/v1/events/payment_failed", json.dumps(report()), headers)
        assert status == 201
        redis.terminate()
        redis.wait(10)

        answers = [_request(server.port, "POST", "/api/v1/events/payment_failed", json.dumps(report()), headers)
                   for _ in range(12)]

        assert [a[0] for a in answers[:11]] == [201] * 11, [(a[0], a[1][:200]) for a in answers]
        assert max(a[3] for a in answers) < 2
        # The limit still holds, counted in the process while the cache is away.
        assert answers[11][0] == 429
        assert FailureEvent.objects.count() == 12
    finally:
        if server:
            server.stop()
        if redis.poll() is None:
            redis.kill()


# --- The scheduler and the workers -------------------------------------------------------------------


class _BrokenActor:
    actor_name = "broken"

    def send(self):
        raise ConnectionError("Redis is down")


class _Actor:
    actor_name = "works"

    def __init__(self):
        self.sent = 0

    def send(self):
        self.sent += 1


@pytest.mark.django_db
def test_a_failed_enqueue_of_one_job_neither_stops_the_tick_nor_loses_the_run(django_capture_on_commit_callbacks,
                                                                                monkeypatch):
    works = _Actor()
    jobs = [scheduler.Periodic("broken", timedelta(minutes=5), _BrokenActor()),
            scheduler.Periodic("works", timedelta(minutes=5), works)]
    ticked = []
    monkeypatch.setattr(scheduler, "registered", lambda: jobs)
    monkeypatch.setattr(scheduler, "_tick_hooks", [lambda: 1 / 0, lambda: ticked.append(1)])

    with django_capture_on_commit_callbacks(execute=True):
        scheduler.tick()

    assert works.sent == 1
    assert ticked == [1]
    # The broken job is due again at once: the next tick enqueues it when the broker is back.
    assert PeriodicJob.objects.get(name="broken").next_run_at <= timezone.now()
    assert PeriodicJob.objects.get(name="works").next_run_at > timezone.now()


@pytest.mark.django_db
def test_a_running_recharge_holds_a_short_lease_that_its_worker_renews(api, default_rules, settings):
    payment = ingest(api, payment_method=card("4242"))
    attempt = due(payment)
    started = timezone.now()
    _, running = runner.start_attempt(attempt.pk)
    running.refresh_from_db()
    assert running.status == AttemptStatus.RUNNING
    assert running.lease_expires_at <= started + timedelta(seconds=settings.TINKO_ATTEMPT_RUN_LEASE + 1)

    later = timezone.now() + timedelta(minutes=5)
    with leases.held(running.pk, running.claims):
        assert leases.renew(now=later) == 1
    running.refresh_from_db()
    assert running.lease_expires_at > later
    # Once the block ends (the run finished or the process is gone) nothing renews it.
    assert leases.renew(now=later) == 0


@pytest.mark.django_db
def test_a_dead_workers_recharge_is_claimed_again_within_30_seconds_and_charged_once(api, default_rules, settings):
    from payments.models import SandboxCharge
    from payments.providers import get_provider

    payment = ingest(api, payment_method=card("4242"))
    attempt = due(payment)
    started_payment, started_attempt = runner.start_attempt(attempt.pk)
    runner.charge(get_provider("sandbox"), payment=started_payment, attempt=started_attempt)  # then kill -9

    worst_case = settings.TINKO_ATTEMPT_RUN_LEASE + settings.TINKO_SCHEDULER_TICK
    assert worst_case < 30
    assert dispatch.claim_due_attempts(now=timezone.now() + timedelta(seconds=worst_case)) == 1
    assert runner.run_attempt(attempt.pk) == runner.RunOutcome.SUCCEEDED
    assert SandboxCharge.objects.count() == 1
    assert Payment.objects.get(pk=payment.pk).status == "recovered"


@pytest.mark.django_db
def test_a_renewed_lease_is_not_claimed_again(api, default_rules):
    payment = ingest(api, payment_method=card("4242"))
    attempt = due(payment)
    _, running = runner.start_attempt(attempt.pk)
    with leases.held(running.pk, running.claims):
        leases.renew(now=timezone.now() + timedelta(seconds=20))
        assert dispatch.claim_due_attempts(now=timezone.now() + timedelta(seconds=25)) == 0
    assert RecoveryAttempt.objects.get(pk=attempt.pk).status == AttemptStatus.RUNNING


def test_the_cache_answers_from_the_process_while_redis_is_unreachable(settings):
    """Sign-in, sign-up and the API read allauth's and our counters from the cache: Redis down must not make them 500."""
    from django.core.cache import caches

    from tinko.cache import FallbackRedisCache

    cache = FallbackRedisCache(f"redis://127.0.0.1:{free_port()}/0", {"OPTIONS": {"socket_connect_timeout": 1}})
    assert cache.add("k", 1) is True
    assert cache.incr("k") == 2
    assert cache.get("k") == 2
    with pytest.raises(ValueError):
        cache.incr("missing")
    with pytest.raises(Exception):
        cache.ping()  # /readyz still sees Redis down
    assert caches["default"].__class__ is FallbackRedisCache or settings.CACHES["default"]["BACKEND"].endswith("LocMemCache")


@pytest.mark.django_db
def test_sign_in_still_works_while_the_cache_is_down(owner, org, settings):
    from django.core.cache import caches
    from django.test import Client

    from tests.conftest import PASSWORD

    settings.CACHES = {"default": {"BACKEND": "tinko.cache.FallbackRedisCache",
                                   "LOCATION": f"redis://127.0.0.1:{free_port()}/0"}}
    assert type(caches["default"]).__name__ == "FallbackRedisCache"
    client = Client(raise_request_exception=False)
    response = client.post("/accounts/login/", {"login": "owner@acme.test", "password": PASSWORD})
    assert response.status_code == 302
