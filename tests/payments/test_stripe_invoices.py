"""Subscription invoices as the unit of recovery, from recorded Stripe payloads in both API shapes.

Webhook endpoints keep the API version they were created with, so a merchant's
events arrive in the shape before 2025-03-31 (the invoice names its
``payment_intent`` and ``charge``; PaymentIntent and Charge name their
``invoice``) or in the current one (no such fields: the invoice's payments are
listed through ``GET /v1/invoice_payments``). Tinko's own reads use the SDK's
current version, so re-fetched objects are always in the current shape.
"""

from __future__ import annotations

import itertools
import time

import pytest
from django.urls import reverse

from payments.models import ProviderSuccess
from recovery.models import AttemptKind, AttemptStatus, FailureEvent, Payment, PaymentStatus, RecoveryAttempt, RetryPolicy
from tests.payments.conftest import post_stripe
from tests.payments.psp import load

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("default_rules")]

EVENTS = ("invoice.payment_failed", "payment_intent.payment_failed", "charge.failed")


def serve_2024(psp):
    psp.add("GET", "/v1/invoices/in_1QoldRenewal01", load("stripe", "renewal_2024/invoice.retrieved"))
    psp.add("GET", "/v1/payment_intents/pi_3QoldRenewal01", load("stripe", "renewal_2024/payment_intent.retrieved"))


def serve_current(psp, next_attempt: int):
    psp.add("GET", "/v1/invoices/in_1QnewRenewal01", load("stripe", "renewal_current/invoice.retrieved", NEXT_ATTEMPT=next_attempt))
    psp.add("GET", "/v1/invoice_payments", load("stripe", "renewal_current/invoice_payments.list"))


SHAPES = {
    "2024-06-20": ("renewal_2024", "in_1QoldRenewal01", "pi_3QoldRenewal01", "ch_3QoldRenewal01", 1900, "EUR"),
    "2025-10-29.clover": ("renewal_current", "in_1QnewRenewal01", "pi_3QnewRenewal01", "ch_3QnewRenewal01", 4900, "USD"),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("order", list(itertools.permutations(EVENTS)), ids="-".join)
def test_one_failed_invoice_is_one_payment_whatever_reports_it_in_any_order(client, fake_psp, stripe_account, shape, order):
    folder, invoice_id, intent_id, charge_id, amount, currency = SHAPES[shape]
    next_attempt = int(time.time()) + 3 * 86400
    serve_2024(fake_psp) if folder == "renewal_2024" else serve_current(fake_psp, next_attempt)
    for kind in order:
        response = post_stripe(client, stripe_account, load("stripe", f"{folder}/{kind}", NEXT_ATTEMPT=next_attempt))
        assert response.status_code == 200, response.content
    payment = Payment.objects.get(organization=stripe_account.organization)
    assert payment.reference == invoice_id and payment.provider_payment_id == intent_id
    assert (payment.amount, payment.currency, payment.failure_count) == (amount, currency, 1)
    failure = FailureEvent.objects.get(payment=payment)
    assert failure.external_id == charge_id
    assert (failure.code, failure.decline_code, failure.category) == ("card_declined", "insufficient_funds", "insufficient_funds")
    assert payment.provider_customer_id.startswith("cus_") and payment.customer.email.endswith("@example.com")


def test_stripe_retry_counts_and_keeps_tinko_24_hours_away(client, fake_psp, stripe_account):
    next_attempt = int(time.time()) + 2 * 3600
    serve_current(fake_psp, next_attempt)
    post_stripe(client, stripe_account, load("stripe", "renewal_current/invoice.payment_failed", NEXT_ATTEMPT=next_attempt))
    payment = Payment.objects.get(reference="in_1QnewRenewal01")
    assert int(payment.provider_retry_at.timestamp()) == next_attempt
    planned = RecoveryAttempt.objects.get(payment=payment, status=AttemptStatus.SCHEDULED)
    assert planned.kind == AttemptKind.AUTO_RETRY
    assert planned.scheduled_for.timestamp() >= next_attempt + 24 * 3600
    assert "payment provider's own retry" in planned.reason


def test_invoice_payment_succeeded_in_the_current_shape_ends_the_recovery(client, fake_psp, stripe_account):
    serve_current(fake_psp, 0)
    post_stripe(client, stripe_account, load("stripe", "renewal_current/invoice.payment_failed", NEXT_ATTEMPT="null"))
    paid = load("stripe", "renewal_current/invoice.retrieved", NEXT_ATTEMPT="null")
    paid.update(status="paid", amount_paid=4900, amount_remaining=0)
    fake_psp.add("GET", "/v1/invoices/in_1QnewRenewal01", paid)
    event = load("stripe", "renewal_current/invoice.payment_failed", NEXT_ATTEMPT="null")
    event.update(id="evt_1QnewInvPaid01", type="invoice.payment_succeeded")
    assert post_stripe(client, stripe_account, event).status_code == 200
    payment = Payment.objects.get(reference="in_1QnewRenewal01")
    assert payment.status == PaymentStatus.RECOVERED
    assert ProviderSuccess.objects.get(payment=payment).charge_id == "pi_3QnewRenewal01"


def test_a_second_payment_of_a_recovered_invoice_raises_a_double_payment_alert(client, fake_psp, stripe_account):
    from notifications.models import WebhookEndpoint
    from notifications.models import WebhookMessage as MerchantMessage
    from tinko import crypto
    from tinko.models import AuditEvent

    WebhookEndpoint.objects.create(organization=stripe_account.organization, url="https://hooks.example.com/tinko",
                                   secret_encrypted=crypto.encrypt("whsec_abc"))
    serve_2024(fake_psp)
    post_stripe(client, stripe_account, load("stripe", "renewal_2024/invoice.payment_failed"))
    first = load("stripe", "payment_intent.retrieved_succeeded")
    first.update(id="pi_3QoldPaidOnce1", amount=1900, amount_received=1900, currency="eur", invoice="in_1QoldRenewal01", metadata={})
    second = dict(first, id="pi_3QoldPaidTwice", latest_charge="ch_3QoldPaidTwice")
    for intent in (first, second):
        fake_psp.add("GET", f"/v1/payment_intents/{intent['id']}", intent)
        event = {"id": f"evt_{intent['id']}", "object": "event", "type": "payment_intent.succeeded",
                 "created": int(time.time()), "data": {"object": intent}}
        assert post_stripe(client, stripe_account, event).status_code == 200
    payment = Payment.objects.get(reference="in_1QoldRenewal01")
    assert payment.status == PaymentStatus.RECOVERED
    alert = AuditEvent.objects.get(action="payment.possible_double_payment", target_id=str(payment.pk))
    assert (alert.data["first_charge"], alert.data["second_charge"]) == ("pi_3QoldPaidOnce1", "pi_3QoldPaidTwice")
    sent = MerchantMessage.objects.get(organization=payment.organization, event_type="payment.possible_double_payment")
    assert sent.payload["data"]["double_payment"]["second_charge"] == "pi_3QoldPaidTwice"


def test_the_double_payment_alert_shows_on_the_payment_page_and_its_timeline(client, owner_client, fake_psp, stripe_account):
    serve_2024(fake_psp)
    post_stripe(client, stripe_account, load("stripe", "renewal_2024/invoice.payment_failed"))
    for name in ("pi_3QoldPaidOnce1", "pi_3QoldPaidTwice"):
        intent = dict(load("stripe", "payment_intent.retrieved_succeeded"), id=name, amount=1900, amount_received=1900,
                      currency="eur", invoice="in_1QoldRenewal01", metadata={})
        fake_psp.add("GET", f"/v1/payment_intents/{name}", intent)
        post_stripe(client, stripe_account, {"id": f"evt_{name}", "object": "event", "type": "payment_intent.succeeded",
                                             "created": int(time.time()), "data": {"object": intent}})
    payment = Payment.objects.get(reference="in_1QoldRenewal01")
    page = owner_client.get(reverse("console:payment_detail", args=[payment.pk])).content.decode()
    assert "data-double-payment" in page and page.count("Possible double payment") >= 2  # the alert and the timeline
    assert "pi_3QoldPaidOnce1" in page and "pi_3QoldPaidTwice" in page


def test_providers_page_says_when_stripe_retries_an_invoice_tinko_recovers(client, owner_client, outsider_client, fake_psp,
                                                                           stripe_account):
    next_attempt = int(time.time()) + 3 * 86400
    serve_current(fake_psp, next_attempt)
    post_stripe(client, stripe_account, load("stripe", "renewal_current/invoice.payment_failed", NEXT_ATTEMPT=next_attempt))
    page = owner_client.get(reverse("console:providers")).content.decode()
    assert 'id="stripe-retries"' in page and "in_1QnewRenewal01" in page
    assert "Revenue recovery → Retries" in page and "turn off Smart Retries" in page
    assert "in_1QnewRenewal01" not in outsider_client.get(reverse("console:providers")).content.decode()


def test_providers_page_is_quiet_when_stripe_does_not_retry(client, owner_client, fake_psp, stripe_account):
    serve_current(fake_psp, 0)
    post_stripe(client, stripe_account, load("stripe", "renewal_current/invoice.payment_failed", NEXT_ATTEMPT="null"))
    assert Payment.objects.get(reference="in_1QnewRenewal01").provider_retry_at is None
    assert 'id="stripe-retries"' not in owner_client.get(reverse("console:providers")).content.decode()


def test_a_card_the_customer_adds_is_charged_at_once(client, fake_psp, stripe_account):
    from tinko.models import AuditEvent

    serve_2024(fake_psp)
    post_stripe(client, stripe_account, load("stripe", "renewal_2024/invoice.payment_failed"))
    payment = Payment.objects.get(reference="in_1QoldRenewal01")
    planned = RecoveryAttempt.objects.get(payment=payment, status=AttemptStatus.SCHEDULED)
    # "At once" means outside quiet hours (test_stripe_webhooks covers them): none, whatever the time of day.
    RetryPolicy.objects.filter(pk=payment.policy_id).update(quiet_hours_start=None, quiet_hours_end=None)

    assert post_stripe(client, stripe_account, load("stripe", "payment_method.attached")).status_code == 200

    payment.refresh_from_db()
    assert (payment.provider_payment_method_id, payment.card_last4, payment.card_exp_year) == ("pm_1QoldDanielNew", "4242", 2032)
    planned.refresh_from_db()
    assert planned.status == AttemptStatus.CANCELLED
    now_attempt = RecoveryAttempt.objects.get(payment=payment, status=AttemptStatus.SCHEDULED)
    assert now_attempt.kind == AttemptKind.AUTO_RETRY and now_attempt.scheduled_for.timestamp() <= time.time() + 1
    assert AuditEvent.objects.get(action="payment.card_updated").data["source"] == "the customer added a card"


def test_customer_updated_without_a_new_default_changes_nothing(client, fake_psp, stripe_account):
    serve_2024(fake_psp)
    post_stripe(client, stripe_account, load("stripe", "renewal_2024/invoice.payment_failed"))
    planned = RecoveryAttempt.objects.get(status=AttemptStatus.SCHEDULED)
    updated = {"id": "evt_1QcustUpdated1", "object": "event", "type": "customer.updated", "created": int(time.time()),
               "data": {"object": load("stripe", "customer.retrieved"), "previous_attributes": {"email": "old@example.com"}}}
    assert post_stripe(client, stripe_account, updated).status_code == 200
    planned.refresh_from_db()
    assert planned.status == AttemptStatus.SCHEDULED


def merchant_report(org, *, reference: str, customer: dict):
    from recovery.ingestion import record_failures
    from recovery.reports import parse_report

    report = parse_report({"reference": reference, "amount": 4999, "currency": "EUR", "provider": "stripe",
                           "failure": {"code": "card_declined"}, "customer": customer})
    return record_failures(organization=org, reports=[report], source="api")[0].payment


def test_the_psp_reports_the_customer_the_merchant_named_as_the_same_customer(client, fake_psp, stripe_account):
    from recovery.models import Customer

    org = stripe_account.organization
    mine = merchant_report(org, reference="order-77", customer={
        "id": "user-42", "email": "alice@example.com", "provider_customer_id": "cus_RenewAlice01"})
    assert post_stripe(client, stripe_account, load("stripe", "payment_intent.payment_failed")).status_code == 200
    theirs = Payment.objects.get(reference="pi_3QfailPI0001")
    assert theirs.customer_id == mine.customer_id
    customer = Customer.objects.get(organization=org)
    assert (customer.external_id, customer.key, customer.phone) == ("user-42", "id:user-42", "+4915112345678")


def test_the_merchant_naming_a_customer_known_from_the_psp_gives_it_the_merchants_id(client, fake_psp, stripe_account):
    from recovery.models import Customer

    org = stripe_account.organization
    post_stripe(client, stripe_account, load("stripe", "payment_intent.payment_failed"))
    assert Customer.objects.get(organization=org).key == "id:cus_RenewAlice01"
    mine = merchant_report(org, reference="order-78", customer={"id": "user-42", "provider_customer_id": "cus_RenewAlice01"})
    customer = Customer.objects.get(organization=org)
    assert mine.customer_id == customer.pk == Payment.objects.get(reference="pi_3QfailPI0001").customer_id
    assert (customer.key, customer.external_id, customer.email) == ("id:user-42", "user-42", "alice@example.com")


def test_another_organizations_customer_with_the_same_psp_id_stays_apart(client, fake_psp, stripe_account, other_org):
    from recovery.models import Customer

    merchant_report(other_org, reference="order-79", customer={"id": "user-42", "provider_customer_id": "cus_RenewAlice01"})
    post_stripe(client, stripe_account, load("stripe", "payment_intent.payment_failed"))
    assert Customer.objects.get(organization=stripe_account.organization).key == "id:cus_RenewAlice01"
    assert Customer.objects.get(organization=other_org).key == "id:user-42"
