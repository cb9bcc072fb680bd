"""Prometheus metrics in one process: /metrics and its token, and each signal counted where it happens.

The suite runs one process, so values live in prometheus-client's default
registry; tests compare a counter before and after. tests/ops/test_metrics_live.py
scrapes gunicorn with several workers, a Dramatiq worker and the scheduler.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import time, timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from notifications import webhooks
from notifications.models import Notification, WebhookDelivery
from recovery import dispatch, runner
from recovery.models import AttemptStatus, Payment, RecoveryAttempt
from tests.notifications.conftest import due_message, ingest
from tests.notifications.test_webhooks import Receiver
from tests.ops.procs import production_env, run_python
from tests.ops.scrapes import samples
from tests.payments.conftest import STRIPE_WEBHOOK_SECRET, post_stripe, stripe_account  # noqa: F401 (fixture)
from tests.recovery.conftest import api, report  # noqa: F401 (fixture)
from tinko import metrics_store

pytestmark = pytest.mark.django_db

TOKEN = "metrics-token-for-tests-0123456789abcdef"


def value(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def card(last4: str) -> dict:
    return {"brand": "visa", "last4": last4, "exp_month": 12, "exp_year": 2030}


@pytest.fixture
def token(settings):
    settings.TINKO_METRICS_TOKEN = TOKEN
    return TOKEN


def scrape(client, **headers) -> dict[str, list]:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return samples(response.content.decode())


# --- The endpoint ---------------------------------------------------------------------------------


def test_metrics_answers_404_while_no_token_is_set(client, settings):
    settings.TINKO_METRICS_TOKEN = ""
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 404


def test_metrics_wants_the_bearer_token(client, token):
    missing = client.get("/metrics")
    assert missing.status_code == 401
    assert missing["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong-token").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


def test_metrics_answers_prometheus_at_a_pod_address_over_plain_http(client, token, settings):
    # Prometheus scrapes a pod by its IP, which is in no ALLOWED_HOSTS, and inside the cluster over HTTP.
    settings.SECURE_SSL_REDIRECT = True
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}", HTTP_HOST="10.1.2.3:8000")
    assert response.status_code == 200
    assert b"tinko_http_requests_total" in response.content
    # Every other page still validates the host.
    assert client.get("/healthz", HTTP_HOST="10.1.2.3:8000").status_code == 400


def test_metrics_refuses_writes(client, token):
    response = client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 405


def test_a_short_metrics_token_stops_start_up(tmp_path):
    result = run_python("import django; django.setup()", production_env(tmp_path, TINKO_METRICS_TOKEN="short"))
    assert result.returncode != 0
    assert "TINKO_METRICS_TOKEN must be at least 32 characters" in result.stderr


# --- Web: requests, database, cache ------------------------------------------------------------------


def test_requests_are_counted_by_view_method_and_status(client):
    before_ok = value("tinko_http_requests_total", view="healthz", method="GET", status="200")
    before_missing = value("tinko_http_requests_total", view="unmatched", method="GET", status="404")
    before_time = value("tinko_http_request_duration_seconds_count", view="healthz", method="GET")

    assert client.get("/healthz").status_code == 200
    assert client.get("/no-such-page/").status_code == 404

    assert value("tinko_http_requests_total", view="healthz", method="GET", status="200") == before_ok + 1
    assert value("tinko_http_requests_total", view="unmatched", method="GET", status="404") == before_missing + 1
    assert value("tinko_http_request_duration_seconds_count", view="healthz", method="GET") == before_time + 1


def test_database_statements_and_cache_operations_are_timed(org):
    from django.core.cache import cache

    selects = value("tinko_db_query_duration_seconds_count", statement="select")
    Payment.objects.filter(organization=org).count()
    assert value("tinko_db_query_duration_seconds_count", statement="select") == selects + 1

    misses, hits = (value("tinko_cache_operations_total", operation="get", outcome=o) for o in ("miss", "hit"))
    assert cache.get("metrics-test") is None
    cache.set("metrics-test", 1)
    assert cache.get("metrics-test") == 1
    assert value("tinko_cache_operations_total", operation="get", outcome="miss") == misses + 1
    assert value("tinko_cache_operations_total", operation="get", outcome="hit") == hits + 1


# --- The recovery engine ----------------------------------------------------------------------------


def test_ingested_failures_are_counted_by_provider_and_category_once_committed(api, django_capture_on_commit_callbacks):
    labels = {"source": "api", "provider": "sandbox", "category": "insufficient_funds"}
    before = value("tinko_failure_events_total", **labels)
    duplicates = value("tinko_failure_reports_duplicate_total", source="api")
    body = report()
    with django_capture_on_commit_callbacks(execute=True):
        assert api.post("events/payment_failed", body).status_code == 201
        assert api.post("events/payment_failed", body).status_code == 200  # the same event again
    assert value("tinko_failure_events_total", **labels) == before + 1
    assert value("tinko_failure_reports_duplicate_total", source="api") == duplicates + 1


def test_a_rolled_back_ingestion_counts_nothing(org, django_capture_on_commit_callbacks):
    from recovery.ingestion import record_failures
    from recovery.reports import parse_report

    labels = {"source": "api", "provider": "sandbox", "category": "insufficient_funds"}
    before = value("tinko_failure_events_total", **labels)
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError), transaction.atomic():
            record_failures(organization=org, reports=[parse_report(report())])
            raise RuntimeError("the request failed after ingestion")
    assert value("tinko_failure_events_total", **labels) == before


def test_a_recharge_counts_the_psp_call_the_attempt_and_the_value_recovered(api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        payment = ingest(api, failure={"decline_code": "insufficient_funds"}, payment_method=card("4242"), currency="EUR")
    attempt = payment.attempts.get(status=AttemptStatus.SCHEDULED)
    RecoveryAttempt.objects.filter(pk=attempt.pk).update(scheduled_for=timezone.now() - timedelta(seconds=1))
    calls = value("tinko_psp_requests_total", provider="sandbox", operation="charge", outcome="ok")
    timed = value("tinko_psp_request_duration_seconds_count", provider="sandbox", operation="charge")
    succeeded = value("tinko_recovery_attempts_total", kind="auto_retry", outcome="succeeded")
    claimed = value("tinko_recovery_attempt_claims_total", reason="due")
    euros = value("tinko_recovered_value_total", currency="EUR")
    by_psp = value("tinko_recovered_payments_total", channel="psp")

    with django_capture_on_commit_callbacks(execute=True):
        assert dispatch.claim_due_attempts() == 1
        assert runner.run_attempt(attempt.pk) == runner.RunOutcome.SUCCEEDED

    assert value("tinko_recovery_attempt_claims_total", reason="due") == claimed + 1
    assert value("tinko_psp_requests_total", provider="sandbox", operation="charge", outcome="ok") == calls + 1
    assert value("tinko_psp_request_duration_seconds_count", provider="sandbox", operation="charge") == timed + 1
    assert value("tinko_recovery_attempts_total", kind="auto_retry", outcome="succeeded") == succeeded + 1
    assert value("tinko_recovered_value_total", currency="EUR") == pytest.approx(euros + 49.99)
    assert value("tinko_recovered_payments_total", channel="psp") == by_psp + 1


def test_a_decline_counts_as_declined_and_failed(api, django_capture_on_commit_callbacks):
    payment = ingest(api, failure={"decline_code": "insufficient_funds"}, payment_method=card("9995"))
    attempt = payment.attempts.get(status=AttemptStatus.SCHEDULED)
    RecoveryAttempt.objects.filter(pk=attempt.pk).update(scheduled_for=timezone.now() - timedelta(seconds=1))
    declined = value("tinko_psp_requests_total", provider="sandbox", operation="charge", outcome="declined")
    failed = value("tinko_recovery_attempts_total", kind="auto_retry", outcome="failed")
    with django_capture_on_commit_callbacks(execute=True):
        dispatch.claim_due_attempts()
        assert runner.run_attempt(attempt.pk) == runner.RunOutcome.DECLINED
    assert value("tinko_psp_requests_total", provider="sandbox", operation="charge", outcome="declined") == declined + 1
    assert value("tinko_recovery_attempts_total", kind="auto_retry", outcome="failed") == failed + 1


def test_a_claim_made_again_after_the_lease_ran_out_is_counted(api, django_capture_on_commit_callbacks):
    payment = ingest(api, failure={"decline_code": "insufficient_funds"}, payment_method=card("4242"))
    attempt = payment.attempts.get(status=AttemptStatus.SCHEDULED)
    RecoveryAttempt.objects.filter(pk=attempt.pk).update(scheduled_for=timezone.now() - timedelta(seconds=1))
    reclaimed = value("tinko_recovery_attempt_claims_total", reason="lease_expired")
    with django_capture_on_commit_callbacks(execute=True):
        assert dispatch.claim_due_attempts() == 1
        # The message was lost: nobody ran it, and its lease runs out.
        later = timezone.now() + dispatch.lease() + timedelta(seconds=1)
        assert dispatch.claim_due_attempts(now=later) == 1
    assert value("tinko_recovery_attempt_claims_total", reason="lease_expired") == reclaimed + 1


def test_due_attempts_their_oldest_age_and_expired_leases_are_read_at_scrape_time(api, client, token):
    fresh = ingest(api, failure={"decline_code": "insufficient_funds"}, payment_method=card("4242"))
    stale = ingest(api, failure={"decline_code": "insufficient_funds"}, payment_method=card("4242"))
    leased = ingest(api, failure={"decline_code": "insufficient_funds"}, payment_method=card("4242"))
    now = timezone.now()
    RecoveryAttempt.objects.filter(payment=fresh).update(scheduled_for=now - timedelta(seconds=30))
    RecoveryAttempt.objects.filter(payment=stale).update(scheduled_for=now - timedelta(minutes=20))
    RecoveryAttempt.objects.filter(payment=leased).update(
        status=AttemptStatus.QUEUED, lease_expires_at=now - timedelta(minutes=1)
    )

    found = scrape(client)

    assert found["tinko_recovery_due_attempts"][0].value == 2
    assert 20 * 60 <= found["tinko_recovery_oldest_due_attempt_age_seconds"][0].value < 21 * 60
    assert found["tinko_recovery_expired_leases"][0].value == 1


def test_nothing_due_reads_as_zero(client, token, db):
    found = scrape(client)
    assert found["tinko_recovery_due_attempts"][0].value == 0
    assert found["tinko_recovery_oldest_due_attempt_age_seconds"][0].value == 0


def test_jobs_waiting_in_the_broker_are_read_at_scrape_time(client, token, run_jobs):
    from tinko.tasks import clear_expired_sessions

    clear_expired_sessions.send()
    clear_expired_sessions.send()
    found = scrape(client)
    waiting = {(s.labels["queue"], s.labels["state"]): s.value for s in found["tinko_queue_messages"]}
    assert waiting[("housekeeping", "ready")] == 2
    assert waiting[("recovery", "ready")] == 0


# --- Webhooks in, messages out ------------------------------------------------------------------------


def test_webhook_requests_are_counted_by_status_with_their_processing_lag(
    client, stripe_account, django_capture_on_commit_callbacks  # noqa: F811
):
    ignored = value("tinko_inbox_messages_total", provider="stripe", status="ignored")
    rejected = value("tinko_inbox_messages_total", provider="stripe", status="rejected")
    lags = value("tinko_inbox_processing_lag_seconds_count", provider="stripe")
    event = {"id": "evt_metrics_1", "object": "event", "type": "customer.created", "created": int(timezone.now().timestamp()),
             "data": {"object": {"id": "cus_1", "object": "customer"}}}

    with django_capture_on_commit_callbacks(execute=True):
        assert post_stripe(client, stripe_account, event).status_code == 200
        assert post_stripe(client, stripe_account, event, secret="whsec_wrong").status_code == 400

    assert value("tinko_inbox_messages_total", provider="stripe", status="ignored") == ignored + 1
    assert value("tinko_inbox_messages_total", provider="stripe", status="rejected") == rejected + 1
    assert value("tinko_inbox_processing_lag_seconds_count", provider="stripe") == lags + 2


def test_messages_are_counted_by_channel_and_outcome(api, django_capture_on_commit_callbacks, run_jobs):
    with django_capture_on_commit_callbacks(execute=True):
        payment = ingest(api)
    sent = value("tinko_notifications_total", channel="email", outcome="sent")
    notified = value("tinko_recovery_attempts_total", kind="notification", outcome="succeeded")
    with django_capture_on_commit_callbacks(execute=True):
        due_message(payment)
    for _ in range(2):  # the message's job, then the delivery job it enqueued after commit
        with django_capture_on_commit_callbacks(execute=True):
            run_jobs()
    assert Notification.objects.get(payment=payment).status == "sent"
    assert value("tinko_notifications_total", channel="email", outcome="sent") == sent + 1
    assert value("tinko_recovery_attempts_total", kind="notification", outcome="succeeded") == notified + 1


def test_a_message_held_by_quiet_hours_counts_as_deferred(api, django_capture_on_commit_callbacks, run_jobs):
    from recovery.models import RetryPolicy

    with django_capture_on_commit_callbacks(execute=True):
        payment = ingest(api)
    # Quiet all day: any hour of the test run is inside it.
    RetryPolicy.objects.filter(pk=payment.policy_id).update(quiet_hours_start=time(0, 0), quiet_hours_end=time.max)
    deferred = value("tinko_notifications_total", channel="email", outcome="deferred")
    attempts = value("tinko_recovery_attempts_total", kind="notification", outcome="deferred")
    with django_capture_on_commit_callbacks(execute=True):
        due_message(payment, quiet_hours=True)
    with django_capture_on_commit_callbacks(execute=True):
        run_jobs()
    assert Notification.objects.get(payment=payment).reason == "quiet_hours"
    assert value("tinko_notifications_total", channel="email", outcome="deferred") == deferred + 1
    assert value("tinko_recovery_attempts_total", kind="notification", outcome="deferred") == attempts + 1


def test_failing_merchant_webhooks_and_a_disabled_endpoint_are_counted(
    org, owner, settings, django_capture_on_commit_callbacks
):
    settings.TINKO_WEBHOOKS_ALLOW_PRIVATE = True
    receiver = Receiver()
    receiver.status = 500
    try:
        webhooks.create_endpoint(organization=org, url=receiver.url, events=[], user=owner)
        (message,) = webhooks.emit_many(organization_id=org.pk, events=[("payment.exhausted", {}, None)])
        delivery = WebhookDelivery.objects.get(message=message)
        retrying = value("tinko_merchant_webhook_deliveries_total", outcome="retrying")
        failed = value("tinko_merchant_webhook_deliveries_total", outcome="failed")
        disabled = value("tinko_merchant_webhook_endpoints_disabled_total")
        now = timezone.now()
        with django_capture_on_commit_callbacks(execute=True):
            for _ in range(8):
                delivery = webhooks.deliver(delivery.pk, now=now)
                now = delivery.next_attempt_at or now
    finally:
        receiver.close()
    assert value("tinko_merchant_webhook_deliveries_total", outcome="retrying") == retrying + 7
    assert value("tinko_merchant_webhook_deliveries_total", outcome="failed") == failed + 1
    assert value("tinko_merchant_webhook_endpoints_disabled_total") == disabled + 1


# --- What labels may carry ------------------------------------------------------------------------------


def test_labels_carry_no_organization_customer_or_payment(api, org, client, token, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        payment = ingest(
            api, failure={"decline_code": "insufficient_funds"}, reference="order-private-7731",
            customer={"id": "cus_secret_42", "email": "grace.hopper@example.com", "phone": "+14155550123"},
            payment_method=card("4242"),
        )
    attempt = payment.attempts.get(status=AttemptStatus.SCHEDULED)
    RecoveryAttempt.objects.filter(pk=attempt.pk).update(scheduled_for=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        dispatch.claim_due_attempts()
        runner.run_attempt(attempt.pk)
    client.get(f"/pay/{'x' * 43}/")

    text = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()

    label_names = {name for family in text_string_to_metric_families(text) for s in family.samples for name in s.labels}
    assert not label_names & {"organization", "org", "organization_id", "customer", "email", "reference", "token", "pid"}
    for private in (org.slug, org.name, payment.reference, "cus_secret_42", "grace.hopper", "4155550123",
                    attempt.idempotency_key, "x" * 43):
        assert private not in text, private


# --- Multiprocess files ------------------------------------------------------------------------------


COUNT_IN_A_PROCESS = """
import os, sys
from prometheus_client import Counter, Histogram
c = Counter("tinko_test_total", "t", ["kind"])
h = Histogram("tinko_test_seconds", "t", buckets=(1, 2))
for _ in range(int(sys.argv[1])):
    c.labels("a").inc()
    h.observe(1.5)
print(os.getpid())
"""


def _collect(directory) -> dict:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    with metrics_store.reading(str(directory)):
        text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(text) for s in f.samples}


def test_an_exited_workers_values_move_to_the_archive_and_keep_counting(tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    pids = [
        int(subprocess.run([sys.executable, "-c", COUNT_IN_A_PROCESS, str(n)], env=env, capture_output=True, text=True,
                           check=True).stdout)
        for n in (3, 4)
    ]
    before = _collect(tmp_path)
    assert before[("tinko_test_total", (("kind", "a"),))] == 7

    for pid in pids:
        metrics_store.archive_dead_process(pid, str(tmp_path))

    assert sorted(p.name for p in tmp_path.glob("*.db")) == ["counter_archive.db", "histogram_archive.db"]
    assert _collect(tmp_path) == before
    # A new process adds to the archived totals.
    subprocess.run([sys.executable, "-c", COUNT_IN_A_PROCESS, "1"], env=env, check=True, capture_output=True)
    after = _collect(tmp_path)
    assert after[("tinko_test_total", (("kind", "a"),))] == 8
    assert after[("tinko_test_seconds_bucket", (("le", "2.0"),))] == 8


def test_metrics_are_made_on_first_use_not_when_django_starts(tmp_path):
    # Dramatiq's worker processes learn their metrics directory after Django has loaded.
    result = run_python(
        "import django, sys; django.setup()\nfrom tinko import metrics\n"
        "print('prometheus_client' in sys.modules)\nmetrics.attempts_claimed(1, reason='due')\n"
        "print('prometheus_client' in sys.modules)",
        production_env(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True"]

