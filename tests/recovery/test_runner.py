"""Claiming and running attempts: success, decline, crash safety, PSP errors, messages, local mode end to end."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from notifications.models import Notification
from payments.models import SandboxCharge
from recovery import dispatch, runner
from recovery.models import AttemptStatus, FailureEvent, Payment, RecoveryAttempt, RecoveryLink, RetryPolicy
from tests.ops.procs import DJANGO_SETUP, clean_env, run_python
from tests.recovery.conftest import report
from tinko.models import AuditEvent, hash_token

pytestmark = pytest.mark.django_db


def ingest(api, **overrides) -> Payment:
    response = api.post("events/payment_failed", report(**overrides))
    assert response.status_code == 201, response.content
    return Payment.objects.get(reference=response.json()["payment"]["reference"])


def card(last4, brand="visa"):
    return {"brand": brand, "last4": last4, "exp_month": 12, "exp_year": 2030}


def due(payment) -> RecoveryAttempt:
    """Make the payment's scheduled attempt due now and claim it (as a tick would)."""
    attempt = payment.attempts.get(status=AttemptStatus.SCHEDULED)
    RecoveryAttempt.objects.filter(pk=attempt.pk).update(scheduled_for=timezone.now() - timedelta(seconds=1))
    # Messages are also held back in quiet hours when they are sent; these tests run at any hour.
    RetryPolicy.objects.filter(pk=payment.policy_id).update(quiet_hours_start=None, quiet_hours_end=None)
    assert dispatch.claim_due_attempts() >= 1
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.QUEUED
    return attempt


def test_successful_retry_recovers_the_payment_with_attribution(api):
    payment = ingest(api, payment_method=card("4242"))
    attempt = due(payment)

    assert runner.run_attempt(attempt.pk) == runner.RunOutcome.SUCCEEDED

    payment.refresh_from_db()
    attempt.refresh_from_db()
    assert payment.status == "recovered"
    assert payment.recovered_attempt == attempt
    assert payment.recovered_channel == "psp"
    assert payment.recovered_amount == 4999
    assert attempt.status == AttemptStatus.SUCCEEDED
    assert SandboxCharge.objects.get().idempotency_key == attempt.idempotency_key
    assert AuditEvent.objects.filter(action="payment.recovered", target_id=str(payment.pk)).exists()


def test_decline_is_classified_and_replanned(api):
    payment = ingest(api, payment_method=card("9995"))
    attempt = due(payment)

    assert runner.run_attempt(attempt.pk) == runner.RunOutcome.DECLINED

    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.FAILED
    assert "insufficient_funds" in attempt.outcome
    event = FailureEvent.objects.get(source="attempt")
    assert event.attempt == attempt
    assert event.category == "insufficient_funds"
    # The default policy messages the customer after the first declined re-charge, then re-charges again.
    following = payment.attempts.get(status=AttemptStatus.SCHEDULED)
    assert following.sequence == 2
    assert following.kind == "notification"
    assert following.reason.startswith("Message 1 of 3 by Email: insufficient funds, alongside the automatic re-charges")
    assert runner.run_attempt(due(payment).pk) == runner.RunOutcome.SENT
    third = payment.attempts.get(status=AttemptStatus.SCHEDULED)
    assert third.reason.startswith("Re-charge 2 of 7")
    assert third.idempotency_key != attempt.idempotency_key


def recharges_only(payment, count=4):
    RetryPolicy.objects.filter(pk=payment.policy_id).update(
        steps={"insufficient_funds": [{"action": "recharge", "after_seconds": 86400}] * count})


def test_card_that_recovers_succeeds_on_the_second_retry(api):
    payment = ingest(api, payment_method=card("9996"))
    recharges_only(payment)
    assert runner.run_attempt(due(payment).pk) == runner.RunOutcome.DECLINED
    payment.refresh_from_db()
    assert runner.run_attempt(due(payment).pk) == runner.RunOutcome.SUCCEEDED
    payment.refresh_from_db()
    assert payment.status == "recovered"
    assert payment.recovered_attempt.sequence == 2


def test_mac_03_decline_stops_retries_and_says_why(api):
    payment = ingest(api, payment_method=card("0303", "mastercard"), customer={"id": "c1"})
    attempt = due(payment)

    assert runner.run_attempt(attempt.pk) == runner.RunOutcome.DECLINED

    payment.refresh_from_db()
    assert not payment.attempts.filter(status=AttemptStatus.SCHEDULED).exists()
    assert payment.status == "exhausted"
    assert FailureEvent.objects.get(source="attempt").reason.startswith("Mastercard advice code 03: Do not try again")
    assert "the card network forbids any automatic reattempt" in payment.status_reason


def test_authentication_required_decline_turns_into_a_message(api):
    payment = ingest(api, payment_method=card("3155"))
    runner.run_attempt(due(payment).pk)

    following = payment.attempts.get(status=AttemptStatus.SCHEDULED)
    assert following.kind == "notification"
    assert following.message_kind == "authentication_needed"


def test_worker_that_died_mid_charge_is_reclaimed_and_charges_exactly_once(api):
    payment = ingest(api, payment_method=card("4242"))
    attempt = due(payment)
    # The worker marked the attempt running and the PSP took the money; then the process died.
    started_payment, started_attempt = runner.start_attempt(attempt.pk)
    from payments.providers import get_provider

    runner.charge(get_provider("sandbox"), payment=started_payment, attempt=started_attempt)
    assert SandboxCharge.objects.count() == 1

    # Before the lease ends nobody touches it; after, the scheduler claims it again.
    assert dispatch.claim_due_attempts() == 0
    later = timezone.now() + timedelta(seconds=dispatch.lease().total_seconds() + 1)
    assert dispatch.claim_due_attempts(now=later) == 1
    attempt.refresh_from_db()
    assert (attempt.status, attempt.claims) == (AttemptStatus.QUEUED, 2)

    assert runner.run_attempt(attempt.pk) == runner.RunOutcome.SUCCEEDED
    assert SandboxCharge.objects.count() == 1
    assert SandboxCharge.objects.get().idempotency_key == attempt.idempotency_key
    payment.refresh_from_db()
    assert payment.status == "recovered"


def test_the_slow_first_run_finishing_late_changes_nothing(api):
    payment = ingest(api, payment_method=card("4242"))
    attempt = due(payment)
    _, first = runner.start_attempt(attempt.pk)
    later = timezone.now() + dispatch.lease() + timedelta(seconds=1)
    dispatch.claim_due_attempts(now=later)
    assert runner.run_attempt(attempt.pk) == runner.RunOutcome.SUCCEEDED

    from payments.providers import get_provider

    result = runner.charge(get_provider("sandbox"), payment=payment, attempt=first)
    assert runner.finish_attempt(first, result=result) == runner.RunOutcome.SUPERSEDED
    assert SandboxCharge.objects.count() == 1


def test_lost_psp_answer_is_retried_with_the_same_key_and_charges_once(api):
    payment = ingest(api, payment_method=card("0408"))
    attempt = due(payment)

    assert runner.run_attempt(attempt.pk) == runner.RunOutcome.ERROR_RESCHEDULED
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.SCHEDULED
    assert "same idempotency key" in attempt.outcome
    key = attempt.idempotency_key

    RecoveryAttempt.objects.filter(pk=attempt.pk).update(scheduled_for=timezone.now())
    dispatch.claim_due_attempts()
    assert runner.run_attempt(attempt.pk) == runner.RunOutcome.SUCCEEDED
    attempt.refresh_from_db()
    assert attempt.idempotency_key == key
    assert SandboxCharge.objects.count() == 1
    payment.refresh_from_db()
    assert payment.status == "recovered"


def test_running_twice_does_nothing_the_second_time(api):
    payment = ingest(api, payment_method=card("4242"))
    attempt = due(payment)
    runner.run_attempt(attempt.pk)

    assert runner.run_attempt(attempt.pk) == runner.RunOutcome.NOT_QUEUED
    assert SandboxCharge.objects.count() == 1


def test_attempt_of_a_cancelled_payment_is_not_run(api):
    payment = ingest(api, payment_method=card("4242"))
    attempt = due(payment)
    Payment.objects.filter(pk=payment.pk).update(status="cancelled")

    assert runner.run_attempt(attempt.pk) == runner.RunOutcome.CANCELLED
    assert SandboxCharge.objects.count() == 0


def test_notification_sends_an_email_with_a_fresh_pay_link(api, django_capture_on_commit_callbacks, run_jobs):
    payment = ingest(api, failure={"decline_code": "expired_card"}, customer={"id": "c1", "email": "ada@example.com", "name": "Ada Lovelace"})
    attempt = due(payment)

    with django_capture_on_commit_callbacks(execute=True):
        assert runner.run_attempt(attempt.pk) == runner.RunOutcome.SENT
    run_jobs()

    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.SUCCEEDED
    link = attempt.link
    assert link.status == "active"
    assert link.expires_at - link.created_at == timedelta(hours=48)
    (message,) = mail.outbox
    assert message.to == ["ada@example.com"]
    assert "Hi Ada," in message.body
    assert "$49.99" in message.body
    token = message.body.split("/pay/")[1].split("/")[0]
    assert len(token) >= 43  # 256 bits, URL-safe base64
    assert RecoveryLink.objects.get(token_hash=hash_token(token)) == link
    assert token not in str(RecoveryLink.objects.values_list())
    # The next reminder is planned after the interval.
    reminder = payment.attempts.get(status=AttemptStatus.SCHEDULED)
    assert reminder.message_kind == "reminder"
    assert reminder.scheduled_for >= attempt.scheduled_for + timedelta(days=2)


def test_a_second_message_carries_the_same_link_with_a_later_expiry(api):
    payment = ingest(api, failure={"decline_code": "expired_card"})
    runner.run_attempt(due(payment).pk)
    first = RecoveryLink.objects.get()
    first_expiry = first.expires_at
    # At most one message a day: the next one comes after the 24-hour cap.
    Notification.objects.update(created_at=timezone.now() - timedelta(hours=25))
    runner.run_attempt(due(payment).pk)

    first.refresh_from_db()
    assert first.status == "active"
    assert first.expires_at > first_expiry
    assert RecoveryLink.objects.count() == 1
    queued = Notification.objects.filter(status="queued")
    assert queued.count() == 2 and {n.link_id for n in queued} == {first.pk}


def test_message_to_a_customer_who_opted_out_is_skipped_and_replanned(api):
    payment = ingest(api, failure={"decline_code": "expired_card"})
    attempt = due(payment)
    payment.customer.opted_out_channels = ["email"]
    payment.customer.save()

    assert runner.run_attempt(attempt.pk) == runner.RunOutcome.SKIPPED
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.SKIPPED
    payment.refresh_from_db()
    assert "no way to reach the customer" in payment.status_reason


# --- Claiming ---------------------------------------------------------------------------------------


def test_tick_with_nothing_due_claims_nothing(api):
    ingest(api)
    assert dispatch.claim_due_attempts() == 0
    assert RecoveryAttempt.objects.get().status == AttemptStatus.SCHEDULED


def test_claim_marks_queued_with_a_lease_and_enqueues_after_commit(api, django_capture_on_commit_callbacks):
    import dramatiq

    payment = ingest(api)
    RecoveryAttempt.objects.update(scheduled_for=timezone.now())
    broker = dramatiq.get_broker()
    broker.flush_all()
    with django_capture_on_commit_callbacks(execute=True):
        assert dispatch.claim_due_attempts() == 1
    attempt = payment.attempts.get()
    assert attempt.status == AttemptStatus.QUEUED
    assert attempt.lease_expires_at > timezone.now()
    messages = broker.consume("recovery", timeout=100)
    message = next(iter(messages))
    assert message.args == ([attempt.pk],)
    messages.close()
    broker.flush_all()


def test_enqueue_failure_loses_nothing_the_next_tick_enqueues_again(api, django_capture_on_commit_callbacks, monkeypatch):
    import dramatiq

    payment = ingest(api)
    RecoveryAttempt.objects.update(scheduled_for=timezone.now())
    broker = dramatiq.get_broker()

    def broker_down(*args, **kwargs):
        raise ConnectionError("Redis is down")

    # The edge of our system: the broker connection fails.
    monkeypatch.setattr(broker, "enqueue", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        assert dispatch.claim_due_attempts() == 1
    attempt = payment.attempts.get()
    assert attempt.status == AttemptStatus.QUEUED
    assert attempt.lease_expires_at <= timezone.now()

    monkeypatch.undo()
    broker.flush_all()
    with django_capture_on_commit_callbacks(execute=True):
        assert dispatch.claim_due_attempts() == 1
    attempt.refresh_from_db()
    assert attempt.claims == 2
    messages = broker.consume("recovery", timeout=100)
    assert next(iter(messages)).args == ([attempt.pk],)
    messages.close()
    broker.flush_all()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("default_rules")
def test_concurrent_schedulers_never_claim_the_same_attempt(api, monkeypatch):
    for i in range(300):
        api.post("events/payment_failed", report(reference=f"order-{i}"))
    RecoveryAttempt.objects.update(scheduled_for=timezone.now())
    enqueued: list[int] = []
    lock = threading.Lock()

    def record(ids):
        with lock:
            enqueued.extend(ids)

    monkeypatch.setattr(dispatch, "enqueue", record)
    barrier = threading.Barrier(4)

    def scheduler():
        try:
            barrier.wait()
            dispatch.claim_due_attempts(batch_size=25)
        finally:
            connection.close()

    threads = [threading.Thread(target=scheduler) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(enqueued) == 300
    assert len(set(enqueued)) == 300
    assert set(RecoveryAttempt.objects.values_list("status", "claims")) == {("queued", 1)}


# --- End to end in local mode -------------------------------------------------------------------------


# Local mode as `make run` has it: SQLite, no Redis (Dramatiq's stub broker), in a process of its own.
LOCAL_MODE_RECOVERY = DJANGO_SETUP + """
import json
import dramatiq
from dramatiq import Worker
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import setup_test_environment
from django.utils import timezone
from payments.models import SandboxCharge
from recovery.models import Payment, RecoveryAttempt, RetryPolicy
from tinko import scheduler, services
from tinko.models import User

setup_test_environment()  # the test client's host
call_command("migrate", verbosity=0)
broker = dramatiq.get_broker()
owner = User.objects.create_user(email="owner@acme.test", password="x")
org = services.create_organization(name="Acme", owner=owner, timezone="UTC", default_currency="USD")
_, key = services.create_api_key(organization=org, name="Local", created_by=owner)
report = json.loads(REPORT)
response = Client().post("/api/v1/events/payment_failed", json.dumps(report), content_type="application/json",
                         headers={"Authorization": f"Bearer {key}"})
assert response.status_code == 201, response.content
payment = Payment.objects.get(reference=report["reference"])
RetryPolicy.objects.filter(pk=payment.policy_id).update(
    steps={"insufficient_funds": [{"action": "recharge", "after_seconds": 86400}] * 4},
    quiet_hours_start=None, quiet_hours_end=None)
worker = Worker(broker, worker_threads=2, worker_timeout=100)
worker.start()
try:
    for _ in range(2):  # the first re-charge declines, the second recovers
        RecoveryAttempt.objects.filter(payment=payment, status="scheduled").update(scheduled_for=timezone.now())
        scheduler.tick()
        broker.join("recovery", timeout=20_000)
        worker.join()
finally:
    worker.stop()
payment.refresh_from_db()
print(json.dumps({
    "database": connection.vendor, "broker": type(broker).__name__, "status": payment.status,
    "attempts": [a.status for a in payment.attempts.order_by("sequence")],
    "charges": SandboxCharge.objects.filter(payment=payment).count(),
}))
"""


def test_local_mode_end_to_end_insufficient_funds_is_recovered_by_the_scheduler_and_worker(tmp_path):
    """Ingest → scheduler tick → a real Dramatiq worker → sandbox re-charge → recovered, on SQLite without Redis."""
    body = report(reference="order-e2e", payment_method=card("9996"), failure={"decline_code": "insufficient_funds"})
    env = clean_env(DEBUG="true", DATABASE_URL=f"sqlite:///{tmp_path / 'tinko.sqlite3'}")
    done = run_python(f"REPORT = {json.dumps(json.dumps(body))}\n" + LOCAL_MODE_RECOVERY, env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "database": "sqlite", "broker": "StubBroker", "status": "recovered", "attempts": ["failed", "succeeded"],
        "charges": 2,
    }


def test_due_attempts_travel_a_few_per_message(api, django_capture_on_commit_callbacks):
    import dramatiq

    for i in range(25):
        api.post("events/payment_failed", report(reference=f"order-{i}"))
    RecoveryAttempt.objects.update(scheduled_for=timezone.now())
    broker = dramatiq.get_broker()
    broker.flush_all()
    with django_capture_on_commit_callbacks(execute=True):
        assert dispatch.claim_due_attempts() == 25

    consumer = broker.consume("recovery", timeout=100)
    batches = []
    for message in consumer:
        if message is None:
            break
        batches.append(message.args[0])
        consumer.ack(message)
    consumer.close()
    assert sorted(len(b) for b in batches) == [5, 10, 10]
    assert sorted(i for b in batches for i in b) == sorted(RecoveryAttempt.objects.values_list("pk", flat=True))


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("default_rules")
def test_one_failing_attempt_does_not_stop_the_others_in_its_message(api):
    from django.db import connection

    from recovery.tasks import run_attempts

    first = ingest(api, reference="order-a", payment_method=card("4242"))
    second = ingest(api, reference="order-b", payment_method=card("4242"))
    RecoveryAttempt.objects.update(scheduled_for=timezone.now())
    dispatch.claim_due_attempts()
    locked, release = threading.Event(), threading.Event()

    def hold_lock():
        # Another transaction holds the first payment's row longer than we wait.
        from django.db import transaction

        try:
            with transaction.atomic():
                Payment.objects.select_for_update().get(pk=first.pk)
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    locked.wait(10)
    with connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = '300ms'")
    try:
        run_attempts.fn([first.attempts.get().pk, second.attempts.get().pk])
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
        release.set()
        holder.join()

    second.refresh_from_db()
    assert second.status == "recovered"
    stuck = first.attempts.get()
    # Left leased: the scheduler claims it again when the lease runs out.
    assert stuck.status in (AttemptStatus.QUEUED, AttemptStatus.RUNNING)
    assert stuck.lease_expires_at > timezone.now()


def test_scheduler_reclaims_never_use_up_the_lost_answer_budget(api):
    """Claims grow with every re-claim (failed enqueues, expired leases); only PSP calls count against the budget."""
    payment = ingest(api, payment_method=card("0408"))
    attempt = due(payment)
    assert runner.run_attempt(attempt.pk) == runner.RunOutcome.ERROR_RESCHEDULED
    # Redis was down for a while: the scheduler re-claimed the attempt many times, each lease ran out.
    RecoveryAttempt.objects.filter(pk=attempt.pk).update(scheduled_for=timezone.now())
    for _ in range(runner.MAX_PSP_CALLS + 3):
        later = timezone.now() + dispatch.lease() + timedelta(seconds=1)
        dispatch.claim_due_attempts(now=later)
        RecoveryAttempt.objects.filter(pk=attempt.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    attempt.refresh_from_db()
    assert attempt.claims > runner.MAX_PSP_CALLS and attempt.psp_calls == 1

    assert runner.run_attempt(attempt.pk) == runner.RunOutcome.SUCCEEDED
    attempt.refresh_from_db()
    assert attempt.psp_calls == 2
    assert SandboxCharge.objects.count() == 1
    payment.refresh_from_db()
    assert payment.status == "recovered"


def test_lost_answers_are_retried_until_the_psp_was_asked_the_budgeted_number_of_times(api):
    payment = ingest(api, payment_method=card("0408"))
    attempt = due(payment)
    # A PSP that never answers: every run leaves the outcome unknown.
    from payments.providers import ChargeResult

    for call in range(1, runner.MAX_PSP_CALLS + 1):
        started_payment, started = runner.start_attempt(attempt.pk)
        assert started.psp_calls == call
        outcome = runner.finish_attempt(started, result=ChargeResult(status="error", code="api_connection_error"))
        if call < runner.MAX_PSP_CALLS:
            assert outcome == runner.RunOutcome.ERROR_RESCHEDULED
            RecoveryAttempt.objects.filter(pk=attempt.pk).update(scheduled_for=timezone.now())
            dispatch.claim_due_attempts()
    assert outcome == runner.RunOutcome.DECLINED
