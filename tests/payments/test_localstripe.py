"""Against localstripe over real HTTP: declines at charge time, a successful off-session re-charge, signed webhooks."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import pytest
import stripe

from payments.models import WebhookMessage, WebhookStatus
from recovery import runner
from recovery.ingestion import record_failures
from recovery.models import AttemptStatus, FailureEvent, FailureSource, Payment, PaymentStatus, RecoveryAttempt
from recovery.reports import parse_report
from tests.payments.conftest import STRIPE_WEBHOOK_SECRET, process_inbox
from tests.payments.localstripe import LocalStripe

SECRET_KEY = "sk_test_51AcmeSecretKey0000004242"


@pytest.fixture(scope="session")
def localstripe():
    server = LocalStripe()
    yield server
    server.stop()


@pytest.fixture
def stripe_api(localstripe, settings):
    settings.TINKO_STRIPE_API_BASE = localstripe.url
    return stripe.StripeClient(SECRET_KEY, base_addresses={"api": localstripe.url}, max_network_retries=0)


def saved_card(api, number: str) -> tuple[str, str]:
    """A customer with ``number`` saved (attached), as a merchant's checkout would leave it."""
    customer = api.v1.customers.create({"email": "dana@example.com"})
    method = api.v1.payment_methods.create({"type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"}})
    api.v1.payment_methods.attach(method.id, {"customer": customer.id})
    return customer.id, method.id


def failed_payment(account, customer_id: str, method_id: str) -> Payment:
    report = parse_report({
        "reference": f"order-{method_id}", "amount": 2500, "currency": "EUR", "provider": "stripe",
        "failure": {"code": "card_declined", "decline_code": "insufficient_funds"},
        "customer": {"email": "dana@example.com"}, "payment_method": {"brand": "visa", "last4": "0341"},
    })
    report.provider_account_id = account.pk
    report.provider_customer_id = customer_id
    report.provider_payment_method_id = method_id
    return record_failures(organization=account.organization, reports=[report], source="stripe")[0].payment


def run_planned_recharge(payment) -> RecoveryAttempt:
    attempt = RecoveryAttempt.objects.get(payment=payment, status=AttemptStatus.SCHEDULED, kind="auto_retry")
    RecoveryAttempt.objects.filter(pk=attempt.pk).update(status=AttemptStatus.QUEUED, claims=1)
    runner.run_attempt(attempt.pk)
    attempt.refresh_from_db()
    return attempt


@pytest.mark.django_db
def test_saved_card_that_declines_at_charge_time_gives_a_classified_failure(stripe_api, stripe_account):
    customer_id, method_id = saved_card(stripe_api, "4000000000000341")
    payment = failed_payment(stripe_account, customer_id, method_id)
    attempt = run_planned_recharge(payment)
    assert attempt.status == AttemptStatus.FAILED
    decline = FailureEvent.objects.get(payment=payment, source=FailureSource.ATTEMPT)
    assert decline.code == "card_declined" and decline.category == "card_declined"
    assert decline.external_id == attempt.idempotency_key


@pytest.mark.django_db
def test_off_session_recharge_that_succeeds_ends_the_recovery(stripe_api, stripe_account):
    customer_id, method_id = saved_card(stripe_api, "4242424242424242")
    payment = failed_payment(stripe_account, customer_id, method_id)
    attempt = run_planned_recharge(payment)
    assert attempt.status == AttemptStatus.SUCCEEDED
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.RECOVERED and payment.recovered_attempt == attempt
    intent = stripe_api.v1.payment_intents.retrieve(attempt.result["charge_id"]) if attempt.result["charge_id"].startswith("pi_") else None
    charges = stripe_api.v1.charges.list({"customer": customer_id}).data
    assert [c.amount for c in charges if c.status == "succeeded"] == [2500]
    assert intent is None or intent.status == "succeeded"
    assert attempt.outcome.startswith("Charged 2500 EUR")  # the normal path: one charge, no earlier attempt asked about


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("default_rules")
def test_localstripe_signed_webhooks_are_verified_and_processed(localstripe, stripe_api, live_server, org, owner):
    from payments import accounts

    account = accounts.connect_account(
        organization=org, provider="stripe", name="Live webhooks", actor=owner,
        secrets={"secret_key": SECRET_KEY, "webhook_secret": STRIPE_WEBHOOK_SECRET},
    )
    localstripe.register_webhook(f"tinko-{account.public_id}", live_server.url + account.webhook_path, STRIPE_WEBHOOK_SECRET)
    customer_id, method_id = saved_card(stripe_api, "4000000000000341")
    with pytest.raises(stripe.CardError):
        stripe_api.v1.payment_intents.create({
            "amount": 1800, "currency": "eur", "customer": customer_id, "payment_method": method_id,
            "off_session": True, "confirm": True,
        })
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        # No worker runs here: the inbox's processing step runs in the test, as a worker's would.
        process_inbox()
        # Events of earlier tests' charges may arrive too: look for this customer's.
        if WebhookMessage.objects.filter(account=account, event_type="payment_intent.payment_failed",
                                         body__contains=customer_id, status=WebhookStatus.PROCESSED).exists():
            break
        time.sleep(0.2)
    message = WebhookMessage.objects.get(account=account, event_type="payment_intent.payment_failed", body__contains=customer_id)
    assert message.signature_valid and message.status == WebhookStatus.PROCESSED, message.error
    payment = Payment.objects.get(organization=org, provider_account=account)
    assert payment.amount == 1800 and payment.provider_customer_id == customer_id
    assert payment.provider_payment_method_id == method_id
    assert FailureEvent.objects.get(payment=payment).category == "card_declined"


class LostAnswers:
    """Between Tinko and localstripe, the answers to one kind of request never come back (the request itself arrives).

    Stripe's idempotency, which localstripe lacks, is kept: only the first
    request with an idempotency key reaches localstripe, as Stripe would replay
    a repeat of the key instead of charging again.
    """

    def __init__(self, monkeypatch, method: str, path: str, *, reach: bool = True):
        self.keys: list[str] = []
        original = stripe.RequestsClient.request

        def request(client, verb, url, headers, post_data=None, **kwargs):
            if verb.upper() != method or urlsplit(url).path != path:
                return original(client, verb, url, headers, post_data, **kwargs)
            key = (headers or {}).get("Idempotency-Key", "")
            if reach and key not in self.keys:
                original(client, verb, url, headers, post_data, **kwargs)
            self.keys.append(key)
            raise stripe.APIConnectionError("The connection dropped before Stripe's answer arrived.")

        monkeypatch.setattr(stripe.RequestsClient, "request", request)


def succeeded_charges(api, customer_id: str) -> list[int]:
    return [c.amount for c in api.v1.charges.list({"customer": customer_id}).data if c.status == "succeeded"]


def charged_with_every_answer_lost(api, account, monkeypatch):
    """A re-charge Stripe made whose answers never reached Tinko, on every same-key retry: (payment, customer, attempt, keys sent)."""
    customer_id, method_id = saved_card(api, "4242424242424242")
    payment = failed_payment(account, customer_id, method_id)
    lost = LostAnswers(monkeypatch, "POST", "/v1/payment_intents")
    first = run_planned_recharge(payment)
    while first.status == AttemptStatus.SCHEDULED:  # every same-key retry loses its answer too
        first = run_planned_recharge(payment)
    monkeypatch.undo()
    return payment, customer_id, first, lost.keys


@pytest.mark.django_db
def test_a_recharge_whose_answers_were_all_lost_is_found_and_not_charged_again(stripe_api, stripe_account, monkeypatch):
    payment, customer_id, first, keys = charged_with_every_answer_lost(stripe_api, stripe_account, monkeypatch)
    assert first.psp_calls == runner.MAX_PSP_CALLS and first.status == AttemptStatus.FAILED
    assert len(keys) == runner.MAX_PSP_CALLS and set(keys) == {first.idempotency_key}
    assert succeeded_charges(stripe_api, customer_id) == [2500]  # Stripe charged; Tinko never heard

    second = run_planned_recharge(payment)
    assert second.pk != first.pk and second.status == AttemptStatus.SKIPPED
    assert "nothing was charged again" in second.outcome
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.RECOVERED and payment.recovered_amount == 2500
    assert payment.recovered_attempt_id == first.pk and payment.recovered_channel == "psp"
    assert succeeded_charges(stripe_api, customer_id) == [2500]
    assert not [i for i in stripe_api.v1.payment_intents.list({"customer": customer_id}).data
                if (i.to_dict().get("metadata") or {}).get("tinko_attempt") == second.idempotency_key]


@pytest.mark.django_db
def test_a_recharge_that_cannot_ask_about_an_earlier_lost_answer_charges_nothing(stripe_api, stripe_account, monkeypatch):
    payment, customer_id, first, _ = charged_with_every_answer_lost(stripe_api, stripe_account, monkeypatch)
    LostAnswers(monkeypatch, "GET", "/v1/payment_intents", reach=False)
    second = run_planned_recharge(payment)
    assert second.pk != first.pk and second.status == AttemptStatus.SCHEDULED
    assert "could not say whether an earlier re-charge succeeded" in second.outcome
    assert "same idempotency key" in second.outcome
    payment.refresh_from_db()
    assert payment.status != PaymentStatus.RECOVERED
    assert succeeded_charges(stripe_api, customer_id) == [2500]


@pytest.mark.django_db
def test_reconciliation_credits_the_attempt_whose_answers_were_lost(stripe_api, stripe_account, monkeypatch):
    from payments.reconciliation import reconcile

    payment, customer_id, first, _ = charged_with_every_answer_lost(stripe_api, stripe_account, monkeypatch)

    assert reconcile()["recovered"] == 1
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.RECOVERED and payment.recovered_attempt_id == first.pk
    assert payment.recovered_amount == 2500 and "Tinko's re-charge" in payment.status_reason
    assert succeeded_charges(stripe_api, customer_id) == [2500]
