"""The webhook inbox's lean path: how few statements a failure costs, and that its per-statement settings stay local."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from payments.models import ProviderAccount, WebhookMessage, WebhookStatus
from recovery.models import Payment
from payments.providers import provider_account_for
from tests.payments.conftest import post_stripe, process_inbox
from tests.payments.psp import load

pytestmark = pytest.mark.django_db


def _sql(ctx) -> list[str]:
    return [q["sql"] for q in ctx.captured_queries]


def test_a_verified_stripe_webhook_is_acknowledged_with_one_insert(client, stripe_account):
    # Steady state: the account is in the cache since the first request.
    assert post_stripe(client, stripe_account, load("stripe", "charge.failed")).status_code == 200
    with CaptureQueriesContext(connection) as ctx:
        response = post_stripe(client, stripe_account, load("stripe", "payment_intent.payment_failed"), process=False)
    assert response.status_code == 200, response.content
    statements = _sql(ctx)
    assert len(statements) == 1 and statements[0].startswith('INSERT INTO "payments_webhookmessage"'), statements
    message = WebhookMessage.objects.get(received_event_id="evt_3QfailPI0001")
    # Stored, not processed: nothing of the payment exists yet.
    assert (message.status, message.event_id, message.response_status) == (WebhookStatus.RECEIVED, "evt_3QfailPI0001", 200)
    assert not Payment.objects.filter(reference="pi_3QfailPI0001").exists()
    assert (message.account_id, message.organization_id) == (stripe_account.pk, stripe_account.organization_id)
    assert message.headers.get("Stripe-Signature") and message.body.startswith("{")


def test_processing_a_stored_stripe_failure_takes_few_statements(client, stripe_account):
    # Steady state: the process has read the classification rules once already.
    assert post_stripe(client, stripe_account, load("stripe", "charge.failed")).status_code == 200
    post_stripe(client, stripe_account, load("stripe", "payment_intent.payment_failed"), process=False)
    with CaptureQueriesContext(connection) as ctx:
        assert process_inbox() == 1
    statements = _sql(ctx)
    # Claim (1), the batch's accounts (1), ingestion with its savepoint and the recovered check (12),
    # outcome (1), the savepoint the test's own transaction turns the processing transaction into (2),
    # and the claim that finds nothing more (1). Claim, accounts and the last claim are per batch.
    assert len(statements) <= 18, "\n".join(s[:120] for s in statements)
    assert sum('FROM "payments_provideraccount"' in s for s in statements) == 1
    assert not [s for s in statements if s.lstrip().upper().startswith("SET ")]
    message = WebhookMessage.objects.get(received_event_id="evt_3QfailPI0001")
    assert (message.status, message.tries) == (WebhookStatus.PROCESSED, 1)
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
    message = WebhookMessage.objects.get(received_event_id="evt_late")
    assert "already recovered" in message.result
    assert (message.status, message.payment_id) == (WebhookStatus.PROCESSED, payment.pk)
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.RECOVERED and payment.failure_count == 1
    assert not FailureEvent.objects.filter(external_id="ch_late").exists()
    assert list(Customer.objects.values_list("key", "email", "name", "updated_at")) == customers
