"""Stripe Billing against localstripe over real HTTP: a subscription's failed renewal, the customer's new card,
the Stripe Customer's contact.

localstripe keeps the real state (customers, cards, subscriptions, invoices,
PaymentIntents and their charges). Two things come from the test instead:
the event envelopes (localstripe's events carry no ``previous_attributes``,
which ``customer.updated`` needs, so each event is built around the object
re-read from localstripe and signed as Stripe signs), and Stripe's own retry,
which the test makes by asking localstripe to pay the invoice as Stripe would.
localstripe's invoice payment takes no ``payment_method``: see localstripe_billing.py.
It answers in the shape before API version 2025-03-31 (the invoice names its
PaymentIntent); the current shape is covered by recorded payloads (test_stripe_invoices.py).
"""

from __future__ import annotations

import time
import uuid

import pytest
import stripe

from recovery import runner
from recovery.models import AttemptKind, AttemptStatus, FailureEvent, Payment, PaymentStatus, RecoveryAttempt
from tests.payments.conftest import post_stripe
from tests.payments.test_localstripe import localstripe, stripe_api  # noqa: F401  (fixtures)
from tinko.models import AuditEvent

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("default_rules")]


def card(api, number: str, customer: str) -> str:
    method = api.v1.payment_methods.create({"type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"}})
    api.v1.payment_methods.attach(method.id, {"customer": customer})
    return method.id


def use_default(api, customer: str, method: str) -> None:
    api.v1.customers.update(customer, {"invoice_settings": {"default_payment_method": method}})


def failed_renewal(api, email="frank@example.com"):
    """A subscription paid by a good card, then renewed after the customer's default became a declining one."""
    customer = api.v1.customers.create({"email": email, "name": "Frank Example"}).id
    use_default(api, customer, card(api, "4242424242424242", customer))
    plan = api.v1.plans.create({"amount": 1500, "currency": "eur", "interval": "month", "product": {"name": "Pro"}})
    subscription = api.v1.subscriptions.create({"customer": customer, "items": [{"plan": plan.id}]})
    assert subscription.status == "active"
    declining = card(api, "4000000000000341", customer)
    use_default(api, customer, declining)
    invoice = api.v1.invoices.create({"customer": customer, "subscription": subscription.id})
    invoice = api.v1.invoices.pay(invoice.id)  # the renewal: Stripe charges the default, which declines
    assert invoice.status == "open"
    return customer, declining, invoice.id


def event(kind: str, obj, previous=None) -> dict:
    data = {"object": obj.to_dict() if hasattr(obj, "to_dict") else obj}
    if previous is not None:
        data["previous_attributes"] = previous
    return {"id": f"evt_{uuid.uuid4().hex[:16]}", "object": "event", "api_version": "2024-06-20", "type": kind,
            "created": int(time.time()), "data": data}


def report_renewal_failure(client, account, api, invoice_id: str) -> Payment:
    invoice = api.v1.invoices.retrieve(invoice_id)
    intent = api.v1.payment_intents.retrieve(invoice.payment_intent)
    for message in (event("invoice.payment_failed", invoice), event("payment_intent.payment_failed", intent)):
        assert post_stripe(client, account, message).status_code == 200
    return Payment.objects.get(organization=account.organization)


def run(attempt: RecoveryAttempt) -> RecoveryAttempt:
    RecoveryAttempt.objects.filter(pk=attempt.pk).update(status=AttemptStatus.QUEUED, claims=1)
    runner.run_attempt(attempt.pk)
    attempt.refresh_from_db()
    return attempt


def succeeded_charges(api, customer: str) -> list:
    return [c for c in api.v1.charges.list({"customer": customer, "limit": 100}).data if c.status == "succeeded"]


def use_steps(account, *steps):
    """The organization's default policy takes ``steps`` for a generic decline (the renewals here decline so)."""
    policy = account.organization.retry_policies.get(is_default=True)
    policy.steps = {**policy.steps, "card_declined": list(steps)}
    policy.save()


RECHARGE_FIRST = ({"action": "recharge", "after_seconds": 3600}, {"action": "message", "after_seconds": 0, "channel": ""})


@pytest.fixture(autouse=True)
def recharge_first(stripe_account):
    # These tests follow Tinko's re-charge of an invoice, whatever the default policy does first, at any
    # time of day: no quiet hours ("at once" means outside them; tests/recovery/test_card_changed.py covers them).
    use_steps(stripe_account, *RECHARGE_FIRST)
    stripe_account.organization.retry_policies.filter(is_default=True).update(
        quiet_hours_start=None, quiet_hours_end=None)


def test_failed_renewal_is_recovered_by_paying_the_invoice_and_stripes_retry_charges_nothing(client, stripe_api, stripe_account):
    customer, _, invoice_id = failed_renewal(stripe_api)
    payment = report_renewal_failure(client, stripe_account, stripe_api, invoice_id)
    assert payment.reference == invoice_id and FailureEvent.objects.filter(payment=payment).count() == 1
    good = card(stripe_api, "4242424242424242", customer)
    use_default(stripe_api, customer, good)
    before = len(succeeded_charges(stripe_api, customer))

    attempt = run(RecoveryAttempt.objects.get(payment=payment, status=AttemptStatus.SCHEDULED, kind=AttemptKind.AUTO_RETRY))

    assert attempt.status == AttemptStatus.SUCCEEDED, attempt.outcome
    invoice = stripe_api.v1.invoices.retrieve(invoice_id)
    assert invoice.status == "paid" and attempt.result["charge_id"] == invoice.payment_intent
    assert stripe_api.v1.payment_intents.retrieve(invoice.payment_intent).invoice == invoice_id  # not a free-standing intent
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.RECOVERED and payment.recovered_attempt == attempt
    # Stripe's own retry of the invoice comes: the invoice is paid, nothing more is charged.
    with pytest.raises(stripe.InvalidRequestError):
        stripe_api.v1.invoices.pay(invoice_id)
    assert post_stripe(client, stripe_account, event("invoice.paid", invoice)).status_code == 200
    assert len(succeeded_charges(stripe_api, customer)) == before + 1
    assert not AuditEvent.objects.filter(action="payment.possible_double_payment").exists()


def test_recharge_of_an_invoice_paid_meanwhile_charges_nothing_and_ends_the_recovery(client, stripe_api, stripe_account):
    customer, _, invoice_id = failed_renewal(stripe_api)
    payment = report_renewal_failure(client, stripe_account, stripe_api, invoice_id)
    use_default(stripe_api, customer, card(stripe_api, "4242424242424242", customer))
    stripe_api.v1.invoices.pay(invoice_id)  # Stripe's retry got there first (its webhook not yet arrived)
    before = len(succeeded_charges(stripe_api, customer))

    attempt = run(RecoveryAttempt.objects.get(payment=payment, status=AttemptStatus.SCHEDULED, kind=AttemptKind.AUTO_RETRY))

    assert attempt.status == AttemptStatus.SKIPPED and "already paid" in attempt.outcome
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.RECOVERED and payment.recovered_attempt is None
    assert len(succeeded_charges(stripe_api, customer)) == before


def test_recharge_of_a_voided_invoice_stops_the_recovery(client, stripe_api, stripe_account):
    _, _, invoice_id = failed_renewal(stripe_api)
    payment = report_renewal_failure(client, stripe_account, stripe_api, invoice_id)
    stripe_api.v1.invoices.void_invoice(invoice_id)

    attempt = run(RecoveryAttempt.objects.get(payment=payment, status=AttemptStatus.SCHEDULED, kind=AttemptKind.AUTO_RETRY))

    assert attempt.status == AttemptStatus.SKIPPED
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.CANCELLED and "voided" in payment.status_reason


def test_customer_choosing_a_new_default_card_is_charged_at_once_with_it(client, stripe_api, stripe_account):
    customer, declining, invoice_id = failed_renewal(stripe_api)
    payment = report_renewal_failure(client, stripe_account, stripe_api, invoice_id)
    planned = RecoveryAttempt.objects.get(payment=payment, status=AttemptStatus.SCHEDULED)
    good = card(stripe_api, "4242424242424242", customer)
    use_default(stripe_api, customer, good)

    updated = event("customer.updated", stripe_api.v1.customers.retrieve(customer),
                    previous={"invoice_settings": {"default_payment_method": declining}})
    assert post_stripe(client, stripe_account, updated).status_code == 200

    planned.refresh_from_db()
    assert planned.status == AttemptStatus.CANCELLED
    now_attempt = RecoveryAttempt.objects.get(payment=payment, status=AttemptStatus.SCHEDULED, kind=AttemptKind.AUTO_RETRY)
    assert now_attempt.scheduled_for.timestamp() <= time.time() + 1
    attempt = run(now_attempt)
    assert attempt.status == AttemptStatus.SUCCEEDED, attempt.outcome
    assert "Visa •••• 4242 (the customer's default payment method)" in attempt.outcome
    invoice = stripe_api.v1.invoices.retrieve(invoice_id)
    assert invoice.status == "paid"
    assert stripe_api.v1.payment_intents.retrieve(invoice.payment_intent).payment_method == good


def test_customer_with_an_email_only_on_the_stripe_customer_gets_the_message(client, stripe_api, stripe_account):
    use_steps(stripe_account, {"action": "message", "after_seconds": 0, "channel": ""})  # straight to the customer
    customer = stripe_api.v1.customers.create({"email": "erin@example.com", "name": "Erin Example",
                                                 "preferred_locales": ["es"]}).id
    method = card(stripe_api, "4000000000000341", customer)
    with pytest.raises(stripe.CardError):
        stripe_api.v1.payment_intents.create({"amount": 2200, "currency": "eur", "customer": customer,
                                              "payment_method": method, "off_session": True, "confirm": True})
    charge = stripe_api.v1.charges.list({"customer": customer}).data[0]
    intent = stripe_api.v1.payment_intents.retrieve(charge.payment_intent)
    assert not intent.to_dict().get("receipt_email")
    assert post_stripe(client, stripe_account, event("payment_intent.payment_failed", intent)).status_code == 200

    payment = Payment.objects.get(provider_customer_id=customer)
    assert (payment.customer.email, payment.customer.locale) == ("erin@example.com", "es")
    fetched_at = payment.customer.provider_fetched_at
    assert fetched_at is not None
    payment.refresh_from_db()
    message = RecoveryAttempt.objects.get(payment=payment, kind=AttemptKind.NOTIFICATION)
    assert message.channel == "email"
    assert run(message).status == AttemptStatus.SUCCEEDED, message.outcome
    assert payment.notifications.get().recipient == "erin@example.com"
    # Read once: a later failure of the same customer does not ask Stripe again.
    with pytest.raises(stripe.CardError):
        stripe_api.v1.payment_intents.create({"amount": 900, "currency": "eur", "customer": customer,
                                              "payment_method": method, "off_session": True, "confirm": True})
    later = [c for c in stripe_api.v1.charges.list({"customer": customer}).data if c.payment_intent != intent.id][0]
    later_intent = stripe_api.v1.payment_intents.retrieve(later.payment_intent)
    assert post_stripe(client, stripe_account, event("payment_intent.payment_failed", later_intent)).status_code == 200
    assert Payment.objects.filter(provider_customer_id=customer).count() == 2
    payment.customer.refresh_from_db()
    assert payment.customer.provider_fetched_at == fetched_at


def test_the_webhook_of_tinkos_own_declined_invoice_payment_is_not_a_second_failure(client, stripe_api, stripe_account):
    _, _, invoice_id = failed_renewal(stripe_api)
    payment = report_renewal_failure(client, stripe_account, stripe_api, invoice_id)

    attempt = run(RecoveryAttempt.objects.get(payment=payment, status=AttemptStatus.SCHEDULED, kind=AttemptKind.AUTO_RETRY))
    assert attempt.status == AttemptStatus.FAILED
    assert "Visa •••• 0341 (the customer's default payment method)" in attempt.outcome
    # Stripe reports the declined payment of the invoice; nothing on it says it was Tinko's.
    intent = stripe_api.v1.payment_intents.retrieve(stripe_api.v1.invoices.retrieve(invoice_id).payment_intent)
    assert intent.latest_charge.id == attempt.result["charge_id"]
    response = post_stripe(client, stripe_account, event("payment_intent.payment_failed", intent))
    assert response.status_code == 200
    from payments.models import WebhookMessage

    assert "Tinko's own re-charge" in WebhookMessage.objects.latest("pk").result
    payment.refresh_from_db()
    assert payment.failure_count == 2 and FailureEvent.objects.filter(payment=payment).count() == 2
