"""The webhook inbox's lean path: how few statements a failure costs, and that its per-statement settings stay local."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from payments.models import ProviderAccount, WebhookMessage, WebhookStatus
from payments.providers import provider_account_for
from recovery.models import Payment
from tests.payments.conftest import post_stripe
from tests.payments.psp import load

pytestmark = pytest.mark.django_db


def _sql(ctx) -> list[str]:
    return [q["sql"] for q in ctx.captured_queries]


def test_a_new_stripe_failure_is_stored_verified_and_processed_in_few_statements(client, stripe_account):
    # Steady state: the process has read the classification rules once already.
    assert post_stripe(client, stripe_account, load("stripe", "charge.failed")).status_code == 200
    with CaptureQueriesContext(connection) as ctx:
        response = post_stripe(client, stripe_account, load("stripe", "payment_intent.payment_failed"))
    assert response.status_code == 200, response.content
    statements = _sql(ctx)
    # Account lookup and store (1), claim (1), ingestion with its savepoint and the
    # recovered check (12), outcome (1), and the savepoint the test's own transaction
    # turns the processing transaction into (24 before these were folded together).
    assert len(statements) <= 16, "\n".join(s[:120] for s in statements)
    # The account is read once, with the store: ingestion reuses it to decide who can re-charge.
    assert sum('FROM "payments_provideraccount"' in s for s in statements) == 1
    # The raw request is one INSERT, and the claim carries the lock timeout: no SET statements.
    assert not [s for s in statements if s.lstrip().upper().startswith("SET ")]
    assert sum('INSERT INTO "payments_webhookmessage"' in s for s in statements) == 1
    message = WebhookMessage.objects.get(received_event_id="evt_3QfailPI0001")
    assert (message.status, message.event_id) == (WebhookStatus.PROCESSED, "evt_3QfailPI0001")
    assert (message.account_id, message.organization_id) == (stripe_account.pk, stripe_account.organization_id)
    assert message.headers.get("Stripe-Signature") and message.body.startswith("{")
    assert Payment.objects.get(reference="pi_3QfailPI0001").provider_account == stripe_account


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("default_rules")
def test_relaxed_commit_and_lock_timeout_do_not_outlive_the_webhook(stripe_account):
    """Both are set for one transaction only; a pooled connection must not keep them for the next request."""
    client = Client()
    assert post_stripe(client, stripe_account, load("stripe", "payment_intent.payment_failed")).status_code == 200
    # A refused delivery (bad signature) is stored through the same single statement.
    assert post_stripe(client, stripe_account, load("stripe", "charge.failed"), signature="t=1,v1=00").status_code == 400
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"
        cursor.execute("SHOW lock_timeout")
        assert cursor.fetchone()[0] == "0"
    statuses = sorted(WebhookMessage.objects.values_list("status", flat=True))
    assert statuses == sorted([WebhookStatus.PROCESSED, WebhookStatus.REJECTED])


def test_the_account_loaded_with_the_payment_is_used_without_a_query(stripe_account, django_assert_num_queries):
    payment = Payment(organization=stripe_account.organization, reference="r1", provider="stripe", amount=100,
                      currency="EUR")
    payment.provider_account = stripe_account
    with django_assert_num_queries(0):
        assert provider_account_for(payment) == stripe_account


def test_a_loaded_account_is_not_trusted_when_it_is_inactive_or_not_the_payments(stripe_account, other_org):
    payment = Payment(organization=stripe_account.organization, reference="r1", provider="stripe", amount=100,
                      currency="EUR")
    payment.provider_account = stripe_account
    stripe_account.is_active = False
    # Inactive as loaded: the database decides (it says active here, so the account is found).
    assert provider_account_for(payment) == ProviderAccount.objects.get(pk=stripe_account.pk)
    ProviderAccount.objects.filter(pk=stripe_account.pk).update(is_active=False)
    assert provider_account_for(payment) is None
    # Loaded, active, but the payment is another organization's: never used.
    ProviderAccount.objects.filter(pk=stripe_account.pk).update(is_active=True)
    stripe_account.is_active = True
    foreign = Payment(organization=other_org, reference="r2", provider="stripe", amount=100, currency="EUR")
    foreign.provider_account = stripe_account
    assert provider_account_for(foreign) is None


def test_a_disconnected_account_is_404_and_its_request_is_stored_under_it(client, stripe_account):
    ProviderAccount.objects.filter(pk=stripe_account.pk).update(is_active=False)
    response = post_stripe(client, stripe_account, load("stripe", "payment_intent.payment_failed"))
    assert response.status_code == 404
    message = WebhookMessage.objects.get()
    assert (message.account_id, message.organization_id, message.status) == (
        stripe_account.pk, stripe_account.organization_id, WebhookStatus.REJECTED)
    assert not Payment.objects.exists()


def test_a_razorpay_accounts_id_under_the_stripe_url_finds_no_account(client, razorpay_account):
    response = client.post(f"/webhooks/stripe/{razorpay_account.public_id}/", data=b"{}", content_type="application/json",
                           HTTP_STRIPE_SIGNATURE="t=1,v1=00")
    assert response.status_code == 404
    message = WebhookMessage.objects.get()
    assert message.account_id is None and message.organization_id is None
    assert message.account_public_id == razorpay_account.public_id


def test_a_late_failure_of_a_recovered_payment_changes_nothing_not_even_its_customer(client, fake_psp, stripe_account):
    """The recovered check now happens inside ingestion, after the customer is read: its savepoint undoes all."""
    from recovery.models import Customer, FailureEvent, PaymentStatus

    post_stripe(client, stripe_account, load("stripe", "payment_intent.payment_failed"))
    fake_psp.add("GET", "/v1/payment_intents/pi_3QfailPI0001", load("stripe", "payment_intent.retrieved_succeeded"))
    assert post_stripe(client, stripe_account, load("stripe", "payment_intent.succeeded")).status_code == 200
    payment = Payment.objects.get(reference="pi_3QfailPI0001")
    assert payment.status == PaymentStatus.RECOVERED
    customers = list(Customer.objects.values_list("key", "email", "name", "updated_at"))
    late = load("stripe", "payment_intent.payment_failed")
    late["id"] = "evt_late"
    intent = late["data"]["object"]
    intent["latest_charge"] = intent["last_payment_error"]["charge"] = "ch_late"
    intent["last_payment_error"]["payment_method"]["billing_details"].update(email="new@example.com", name="New Name")
    response = post_stripe(client, stripe_account, late)
    assert response.status_code == 200
    assert "already recovered" in response.json()["detail"]
    message = WebhookMessage.objects.get(received_event_id="evt_late")
    assert (message.status, message.payment_id) == (WebhookStatus.PROCESSED, payment.pk)
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.RECOVERED and payment.failure_count == 1
    assert not FailureEvent.objects.filter(external_id="ch_late").exists()
    assert list(Customer.objects.values_list("key", "email", "name", "updated_at")) == customers
