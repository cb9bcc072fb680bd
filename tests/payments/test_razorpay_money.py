"""Razorpay money safety, against a recording fake Razorpay over real HTTP.

Razorpay's own errors are not declines (they keep the retry budget and the
receipt), a refused key pauses the account's re-charges and tells its admins,
one attempt makes one order however many runs overlap, a mandate debit pending
at the bank is polled and never debited twice, and only ``captured`` is paid.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from payments.providers import ChargeResult, provider_for_account, recharge_provider
from payments.razorpay.provider import receipt_for
from recovery import dispatch, runner
from recovery.models import AttemptStatus, FailureEvent, FailureSource, RecoveryAttempt, RetryPolicy
from recovery.services import retry_now
from tests.payments.razorpay_fake import BAD_KEY, BAD_REQUEST, SERVER_ERROR, FakeRazorpay
from tests.payments.test_psp_calls import payment_for
from tinko.models import AuditEvent, OutboundEmail

# The concurrency test is transactional: its flush takes the default rules with it.
pytestmark = pytest.mark.usefixtures("default_rules")


@pytest.fixture
def razorpay(settings):
    fake = FakeRazorpay().start()
    settings.TINKO_RAZORPAY_API_BASE = fake.url
    yield fake
    fake.stop()


def rzp_payment(account, **kwargs):
    return payment_for(account, customer="cust_Nravi000000001", method="token_Nravi00000001",
                       reference="order_Nrenew0000001", currency="INR", **kwargs)


def due(payment) -> RecoveryAttempt:
    attempt = payment.attempts.get(status=AttemptStatus.SCHEDULED, kind="auto_retry")
    RecoveryAttempt.objects.filter(pk=attempt.pk).update(scheduled_for=timezone.now() - timedelta(seconds=1))
    RetryPolicy.objects.filter(pk=payment.policy_id).update(quiet_hours_start=None, quiet_hours_end=None)
    assert dispatch.claim_due_attempts() >= 1
    attempt.refresh_from_db()
    return attempt


def again(attempt) -> None:
    """The attempt's rescheduled try comes due and the scheduler claims it."""
    RecoveryAttempt.objects.filter(pk=attempt.pk).update(scheduled_for=timezone.now() - timedelta(seconds=1))
    assert dispatch.claim_due_attempts() >= 1


def declines(payment) -> int:
    return FailureEvent.objects.filter(payment=payment, source=FailureSource.ATTEMPT).count()


@pytest.mark.django_db
@pytest.mark.parametrize("fault", ["400", "5xx", "timeout"])
def test_provider_errors_are_not_declines_and_the_next_try_reuses_the_receipt(razorpay, razorpay_account, settings, fault):
    settings.TINKO_PSP_TIMEOUT = 1
    payment = rzp_payment(razorpay_account)
    attempt = due(payment)
    if fault == "400":
        razorpay.fail("POST", "/v1/payments/create/recurring", 400, BAD_REQUEST)
    elif fault == "5xx":
        razorpay.fail("POST", "/v1/orders", 502, SERVER_ERROR)
    else:
        razorpay.fail("POST", "/v1/payments/create/recurring", 200, {}, delay=2)

    assert runner.run_attempt(attempt.pk) == runner.RunOutcome.ERROR_RESCHEDULED
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.SCHEDULED
    assert attempt.outcome.startswith("Provider rejected the request: ")
    assert {"400": "HTTP 400: The contact field is required", "5xx": "HTTP 502",
            "timeout": "did not answer within 1 s"}[fault] in attempt.outcome
    assert declines(payment) == 0
    payment.refresh_from_db()
    assert payment.failure_count == 1 and payment.status == "recovering"

    again(attempt)
    assert runner.run_attempt(attempt.pk) == runner.RunOutcome.SUCCEEDED
    receipts = {r.query["receipt"][0] for r in razorpay.calls("GET", "/v1/orders")}
    assert receipts == {receipt_for(attempt.idempotency_key)}
    assert len(razorpay.orders) == 1
    assert [d["status"] for d in razorpay.debits()] == ["captured"]
    payment.refresh_from_db()
    assert payment.status == "recovered"


@pytest.mark.django_db
def test_a_refused_key_pauses_the_accounts_recharges_and_tells_the_admins(razorpay, razorpay_account, admin, member):
    payment = rzp_payment(razorpay_account)
    attempt = due(payment)
    razorpay.fail("GET", "/v1/orders", 401, BAD_KEY)

    assert runner.run_attempt(attempt.pk) == runner.RunOutcome.ERROR_RESCHEDULED
    attempt.refresh_from_db()
    assert attempt.outcome.startswith("Provider rejected the request: Razorpay refused the key id and secret")
    assert declines(payment) == 0
    razorpay_account.refresh_from_db()
    assert razorpay_account.recharges_paused_at is not None
    assert "Authentication failed" in razorpay_account.recharges_paused_reason
    mail = OutboundEmail.objects.get()
    assert sorted(mail.to) == ["admin@acme.test", "owner@acme.test"]
    assert AuditEvent.objects.filter(action="provider_account.recharges_paused").count() == 1

    # The next try makes no call: the paused account re-charges nothing, and the customer is asked instead.
    calls = len(razorpay.requests)
    again(attempt)
    assert runner.run_attempt(attempt.pk) == runner.RunOutcome.SKIPPED
    assert len(razorpay.requests) == calls
    attempt.refresh_from_db()
    assert "paused" in attempt.outcome
    provider, why = recharge_provider(payment)
    assert provider is None and "Test the connection or enter new keys" in why

    # A working key again (the connection test passes) resumes re-charges.
    from payments import accounts

    ok, _ = accounts.test_connection(account=razorpay_account)
    assert ok
    razorpay_account.refresh_from_db()
    assert razorpay_account.recharges_paused_at is None
    assert recharge_provider(payment)[0] is not None


@pytest.mark.django_db
def test_a_failed_debit_reported_as_a_400_is_still_a_decline(razorpay, razorpay_account):
    razorpay.recurring_status = "failed"
    payment = rzp_payment(razorpay_account)
    attempt = due(payment)
    assert runner.run_attempt(attempt.pk) == runner.RunOutcome.DECLINED
    assert declines(payment) == 1
    assert FailureEvent.objects.get(payment=payment, source=FailureSource.ATTEMPT).decline_code == "insufficient_funds"


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_runs_of_one_attempt_create_one_order(razorpay, razorpay_account):
    razorpay.order_delay = 1.0
    payment = rzp_payment(razorpay_account)
    provider = provider_for_account(razorpay_account)
    results, start = [], threading.Barrier(2)

    def run():
        try:
            start.wait()
            results.append(provider.charge_off_session(payment=payment, amount=4999, currency="INR",
                                                       idempotency_key="tinko_att_concurrent"))
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(razorpay.calls("POST", "/v1/orders")) == 1
    assert len(razorpay.orders) == 1 and len(razorpay.debits()) == 1
    assert sorted(r.status for r in results) == ["error", "succeeded"]
    assert next(r for r in results if r.status == "error").code == "in_progress"
    # The run that lost the race, run again later, finds the one order and its charge.
    result = provider.charge_off_session(payment=payment, amount=4999, currency="INR", idempotency_key="tinko_att_concurrent")
    assert result.succeeded and len(razorpay.orders) == 1 and len(razorpay.debits()) == 1


@pytest.mark.django_db
def test_a_pending_mandate_debit_is_polled_and_never_debited_twice(razorpay, razorpay_account):
    razorpay.recurring_status = "created"
    payment = rzp_payment(razorpay_account)
    attempt = due(payment)

    assert runner.run_attempt(attempt.pk) == runner.RunOutcome.PENDING_RESCHEDULED
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.SCHEDULED
    assert "no new charge meanwhile" in attempt.outcome
    first_wait = attempt.scheduled_for - timezone.now()
    for _ in range(3):
        again(attempt)
        assert runner.run_attempt(attempt.pk) == runner.RunOutcome.PENDING_RESCHEDULED
    attempt.refresh_from_db()
    assert attempt.scheduled_for - timezone.now() > first_wait  # backoff
    assert len(razorpay.debits()) == 1 and len(razorpay.calls("POST", "/v1/payments/create/recurring")) == 1
    assert declines(payment) == 0

    razorpay.settle(razorpay.debits()[0]["id"], "captured")
    again(attempt)
    assert runner.run_attempt(attempt.pk) == runner.RunOutcome.SUCCEEDED
    assert len(razorpay.debits()) == 1
    payment.refresh_from_db()
    assert payment.status == "recovered"


@pytest.mark.django_db
def test_a_debit_pending_past_the_settlement_window_stops_and_blocks_any_new_debit(razorpay, razorpay_account, settings):
    razorpay.recurring_status = "created"
    payment = rzp_payment(razorpay_account)
    attempt = due(payment)
    assert runner.run_attempt(attempt.pk) == runner.RunOutcome.PENDING_RESCHEDULED
    old = timezone.now() - timedelta(days=settings.TINKO_RAZORPAY_DEBIT_SETTLEMENT_DAYS, hours=1)
    razorpay.debits()[0]["created_at"] = int(old.timestamp())  # the bank has held it this long

    again(attempt)
    assert runner.run_attempt(attempt.pk) == runner.RunOutcome.DECLINED
    attempt.refresh_from_db()
    assert "has not settled debit" in attempt.result["message"]
    # An unknown outcome stops the automatic re-charges for a person to look.
    assert not payment.attempts.filter(kind="auto_retry", status=AttemptStatus.SCHEDULED).exists()

    # A person retries by hand while the bank still holds the debit: no second debit.
    retried = retry_now(payment=payment)
    RecoveryAttempt.objects.filter(pk=retried.pk).update(scheduled_for=timezone.now() - timedelta(seconds=1))
    dispatch.claim_due_attempts()
    assert runner.run_attempt(retried.pk) == runner.RunOutcome.DECLINED  # the earlier debit, still unsettled, is the answer
    assert len(razorpay.debits()) == 1 and len(razorpay.calls("POST", "/v1/payments/create/recurring")) == 1


@pytest.mark.django_db
def test_only_captured_counts_as_paid(razorpay, razorpay_account):
    razorpay.recurring_status = "created"
    payment = rzp_payment(razorpay_account)
    provider = provider_for_account(razorpay_account)
    first = provider.charge_off_session(payment=payment, amount=4999, currency="INR", idempotency_key="tinko_att_auth")
    assert first.status == ChargeResult.PENDING
    with razorpay._lock:
        razorpay.debits()[0]["status"] = "authorized"
    second = provider.charge_off_session(payment=payment, amount=4999, currency="INR", idempotency_key="tinko_att_auth")
    assert second.status == ChargeResult.PENDING and "authorized" in second.message
    razorpay.settle(razorpay.debits()[0]["id"], "captured")
    assert provider.charge_off_session(payment=payment, amount=4999, currency="INR", idempotency_key="tinko_att_auth").succeeded


@pytest.mark.django_db
def test_recurring_debit_sends_only_known_contact_and_asks_the_customer_otherwise(razorpay, razorpay_account):
    payment = rzp_payment(razorpay_account)
    provider = provider_for_account(razorpay_account)
    assert provider.charge_off_session(payment=payment, amount=4999, currency="INR", idempotency_key="tinko_att_c1").succeeded
    sent = razorpay.calls("POST", "/v1/payments/create/recurring")[0].json
    assert sent["email"] == "alice@example.com" and sent["contact"] == "+4915112345678"

    payment.customer.phone = ""
    payment.customer.save(update_fields=["phone"])
    payment.refresh_from_db()
    provider, why = recharge_provider(payment)
    assert provider is None and why == (
        "Razorpay needs the customer's phone number for a recurring debit, and Tinko has none")


def _charged_with_every_answer_lost(razorpay, provider, payment, key):
    """Razorpay captured the debit, but neither the debit's answer nor the order's payments reached Tinko."""
    razorpay.fail("POST", "/v1/payments/create/recurring", 504, SERVER_ERROR, lost=True)
    razorpay.fail("GET", "/v1/orders/order_Fake0000000001/payments", 503, SERVER_ERROR)
    result = provider.charge_off_session(payment=payment, amount=4999, currency="INR", idempotency_key=key)
    assert result.status == ChargeResult.ERROR and result.message.startswith("provider rejected the request")
    assert [d["status"] for d in razorpay.debits()] == ["captured"]


@pytest.mark.django_db
def test_a_new_attempt_finds_the_earlier_attempts_capture_and_debits_nothing(razorpay, razorpay_account):
    payment = rzp_payment(razorpay_account)
    provider = provider_for_account(razorpay_account)
    _charged_with_every_answer_lost(razorpay, provider, payment, "tinko_att_first")

    result = provider.charge_off_session(payment=payment, amount=4999, currency="INR", idempotency_key="tinko_att_second")
    assert result.succeeded and result.charge_id == razorpay.debits()[0]["id"]
    assert len(razorpay.orders) == 1 and len(razorpay.debits()) == 1


@pytest.mark.django_db
def test_reconciliation_ends_recovered_a_recharge_whose_answers_were_lost(razorpay, razorpay_account):
    from payments.reconciliation import reconcile

    payment = rzp_payment(razorpay_account)
    provider = provider_for_account(razorpay_account)
    _charged_with_every_answer_lost(razorpay, provider, payment, "tinko_att_lost")
    # The attempt that made it gave up on its lost answers.
    attempt = RecoveryAttempt.objects.create(
        organization_id=payment.organization_id, payment=payment, sequence=99, kind="auto_retry", channel="psp",
        status=AttemptStatus.FAILED, scheduled_for=timezone.now(), reason="test", amount=4999, currency="INR",
        idempotency_key="tinko_att_lost",
    )

    assert reconcile()["recovered"] == 1
    payment.refresh_from_db()
    assert payment.status == "recovered" and payment.recovered_amount == 4999
    assert payment.recovered_attempt_id == attempt.pk and payment.recovered_channel == "psp"
    assert len(razorpay.debits()) == 1


@pytest.mark.django_db
def test_a_due_debit_without_the_customers_phone_asks_the_customer_instead(razorpay, razorpay_account):
    payment = rzp_payment(razorpay_account)
    attempt = due(payment)
    payment.customer.phone = ""
    payment.customer.save(update_fields=["phone"])

    assert runner.run_attempt(attempt.pk) == runner.RunOutcome.SKIPPED
    assert razorpay.requests == []
    attempt.refresh_from_db()
    assert attempt.outcome == "Razorpay needs the customer's phone number for a recurring debit, and Tinko has none"
    following = payment.attempts.exclude(pk=attempt.pk).get()
    assert (following.kind, following.channel) == ("notification", "email")


@pytest.mark.django_db
def test_razorpay_down_while_a_debit_is_pending_keeps_polling_and_never_debits_again(razorpay, razorpay_account):
    razorpay.recurring_status = "created"
    payment = rzp_payment(razorpay_account)
    attempt = due(payment)
    assert runner.run_attempt(attempt.pk) == runner.RunOutcome.PENDING_RESCHEDULED
    order_id = next(iter(razorpay.orders))

    razorpay.fail("GET", f"/v1/orders/{order_id}", 503, SERVER_ERROR, times=runner.MAX_PSP_CALLS + 1)
    for _ in range(runner.MAX_PSP_CALLS + 1):
        again(attempt)
        assert runner.run_attempt(attempt.pk) == runner.RunOutcome.PENDING_RESCHEDULED
    attempt.refresh_from_db()
    assert "could not be asked about the pending debit" in attempt.outcome
    assert len(razorpay.calls("POST", "/v1/payments/create/recurring")) == 1 and declines(payment) == 0
