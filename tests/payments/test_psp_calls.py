"""What reaches the PSP: off-session re-charges with idempotency keys, decline codes, checkout, reconciliation."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from payments.models import ReconciliationCheck
from payments.providers import checkout_provider, provider_for_account, recharge_provider
from payments.razorpay.provider import receipt_for
from payments.reconciliation import reconcile
from recovery.ingestion import record_failures
from recovery.models import Payment, PaymentStatus
from recovery.reports import parse_report
from recovery.services import create_link
from tests.payments.conftest import RAZORPAY_KEY_SECRET
from tests.payments.psp import load

pytestmark = pytest.mark.django_db

DECLINE_402 = {"error": {
    "type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds", "advice_code": "try_again_later",
    "network_advice_code": "24", "network_decline_code": "51", "charge": "ch_3QdeclineCh01",
    "message": "Your card has insufficient funds.",
}}


def payment_for(account, *, customer="cus_RenewAlice01", method="pm_1QaliceCard01", reference="pi_3QfailPI0001", currency="EUR"):
    report = parse_report({
        "reference": reference, "amount": 4999, "currency": currency, "provider": account.provider,
        "provider_payment_id": reference, "failure": {"code": "card_declined", "decline_code": "insufficient_funds"},
        "customer": {"email": "alice@example.com", "phone": "+4915112345678"},
    })
    report.provider_account_id = account.pk
    report.provider_customer_id = customer
    report.provider_payment_method_id = method
    return record_failures(organization=account.organization, reports=[report], source=account.provider)[0].payment


def test_stripe_recharge_sends_the_attempts_idempotency_key(fake_psp, stripe_account):
    fake_psp.add("GET", "/v1/customers/cus_RenewAlice01", load("stripe", "customer.retrieved"))
    fake_psp.add("POST", "/v1/payment_intents", load("stripe", "payment_intent.retrieved_succeeded"))
    payment = payment_for(stripe_account)
    provider, why = recharge_provider(payment)
    assert why == ""
    result = provider.charge_off_session(payment=payment, amount=4999, currency="EUR", idempotency_key="tinko_att_abc123")
    assert result.succeeded and result.amount == 4999 and result.currency == "EUR"
    sent = fake_psp.calls("POST", "/v1/payment_intents")[0]
    assert sent.headers["Idempotency-Key"] == "tinko_att_abc123"
    assert sent.form["off_session"] == "true" and sent.form["confirm"] == "true"
    assert sent.form["customer"] == "cus_RenewAlice01" and sent.form["payment_method"] == "pm_1QaliceCard01"
    # No earlier attempt of unknown outcome: Stripe is asked nothing before the charge.
    assert not fake_psp.calls("GET", "/v1/payment_intents")


def test_stripe_decline_returns_every_code_to_the_classifier(fake_psp, stripe_account):
    fake_psp.add("GET", "/v1/customers/cus_RenewAlice01", load("stripe", "customer.retrieved"))
    fake_psp.add("POST", "/v1/payment_intents", DECLINE_402, status=402)
    payment = payment_for(stripe_account)
    result = provider_for_account(stripe_account).charge_off_session(payment=payment, amount=4999, currency="EUR", idempotency_key="k1")
    assert (result.status, result.code, result.decline_code, result.advice_code, result.network_advice_code,
            result.network_decline_code) == ("declined", "card_declined", "insufficient_funds", "try_again_later", "24", "51")


def test_stripe_authentication_required_asks_the_customer(fake_psp, stripe_account):
    fake_psp.add("GET", "/v1/customers/cus_RenewAlice01", load("stripe", "customer.retrieved"))
    fake_psp.add("POST", "/v1/payment_intents", {"error": {
        "type": "card_error", "code": "authentication_required", "decline_code": "authentication_required",
        "message": "Your card was declined. This transaction requires authentication."}}, status=402)
    payment = payment_for(stripe_account)
    result = provider_for_account(stripe_account).charge_off_session(payment=payment, amount=4999, currency="EUR", idempotency_key="k2")
    assert result.requires_action and result.decline_code == "authentication_required"


def test_stripe_without_saved_card_cannot_recharge(stripe_account):
    payment = payment_for(stripe_account, customer="", method="")
    provider, why = recharge_provider(payment)
    assert provider is None and "saved card" in why


def test_stripe_or_razorpay_without_connected_account_cannot_recharge(org):
    report = parse_report({"reference": "x1", "amount": 100, "currency": "EUR", "provider": "stripe", "failure": {"code": "card_declined"}})
    payment = record_failures(organization=org, reports=[report])[0].payment
    provider, why = recharge_provider(payment)
    assert provider is None and "connected" in why


def test_razorpay_recurring_charge_is_tied_to_the_key_by_the_order_receipt(fake_psp, razorpay_account):
    payment = payment_for(razorpay_account, customer="cust_Nravi000000001", method="token_Nravi00000001",
                          reference="order_Nrenew0000001", currency="INR")
    receipt = receipt_for("tinko_att_rzp1")
    fake_psp.add("GET", "/v1/orders", {"entity": "collection", "count": 0, "items": []})
    fake_psp.add("POST", "/v1/orders", {"id": "order_Nretry000001", "entity": "order", "amount": 4999, "currency": "INR", "receipt": receipt, "status": "created"})
    fake_psp.add("POST", "/v1/payments/create/recurring", {"razorpay_payment_id": "pay_Nretry000001", "razorpay_order_id": "order_Nretry000001"})
    fake_psp.add("GET", "/v1/orders/order_Nretry000001/payments", {"entity": "collection", "count": 1, "items": [
        {"id": "pay_Nretry000001", "entity": "payment", "amount": 4999, "currency": "INR", "status": "captured"}]})
    result = provider_for_account(razorpay_account).charge_off_session(payment=payment, amount=4999, currency="INR", idempotency_key="tinko_att_rzp1")
    assert result.succeeded and result.charge_id == "pay_Nretry000001"
    assert fake_psp.calls("GET", "/v1/orders")[0].query["receipt"] == [receipt]
    recurring = fake_psp.calls("POST", "/v1/payments/create/recurring")[0].json
    assert recurring["token"] == "token_Nravi00000001" and recurring["order_id"] == "order_Nretry000001"


def test_stripe_checkout_session_ties_the_link_and_confirms_from_stripe(fake_psp, stripe_account):
    payment = payment_for(stripe_account)
    link, token = create_link(payment=payment)
    ids = {"LINK_ID": link.pk, "PAYMENT_ID": payment.pk, "REFERENCE": payment.reference, "TOKEN": token}
    fake_psp.add("POST", "/v1/checkout/sessions", load("stripe", "checkout.session.created", **ids))
    fake_psp.add("GET", "/v1/checkout/sessions/cs_test_a1QcheckoutSess01", load("stripe", "checkout.session.retrieved", **ids))
    provider, _ = checkout_provider(payment)
    session = provider.create_checkout(payment=payment, link=link, token=token,
                                       success_url=f"http://testserver/pay/{token}/return/",
                                       cancel_url=f"http://testserver/pay/{token}/?cancelled=1")
    assert session.reference == "cs_test_a1QcheckoutSess01" and session.url.startswith("https://checkout.stripe.com/")
    sent = fake_psp.calls("POST", "/v1/checkout/sessions")[0].form
    assert sent["mode"] == "payment" and sent["metadata[tinko_link_id]"] == str(link.pk)
    assert sent["success_url"].endswith("/return/?session_id={CHECKOUT_SESSION_ID}")
    assert sent["line_items[0][price_data][unit_amount]"] == "4999" and sent["customer"] == "cus_RenewAlice01"
    result = provider.confirm_checkout(payment=payment, link=link, params={"session_id": "cs_test_a1QcheckoutSess01"})
    assert (result.status, result.amount, result.currency) == ("paid", 4999, "EUR")
    other_link, _ = create_link(payment=payment)
    assert provider.confirm_checkout(payment=payment, link=other_link, params={"session_id": "cs_test_a1QcheckoutSess01"}).status == "failed"


def _callback(link_id, status="paid", secret=RAZORPAY_KEY_SECRET):
    fields = {"razorpay_payment_id": "pay_Nplink0000001", "razorpay_payment_link_id": "plink_Nlink00000001",
              "razorpay_payment_link_reference_id": f"tinko-{link_id}-ab12cd34", "razorpay_payment_link_status": status}
    message = "|".join([fields["razorpay_payment_link_id"], fields["razorpay_payment_link_reference_id"],
                        fields["razorpay_payment_link_status"], fields["razorpay_payment_id"]])
    fields["razorpay_signature"] = hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()
    return fields


def test_razorpay_payment_link_callback_is_verified_then_refetched(fake_psp, razorpay_account):
    payment = payment_for(razorpay_account, reference="order_Nrenew0000001", currency="INR")
    link, token = create_link(payment=payment)
    ids = {"LINK_ID": link.pk, "PAYMENT_ID": payment.pk, "REFERENCE": payment.reference}
    fake_psp.add("POST", "/v1/payment_links/", load("razorpay", "payment_link.created", **ids))
    fake_psp.add("POST", "/v1/payment_links", load("razorpay", "payment_link.created", **ids))
    fake_psp.add("GET", "/v1/payment_links/plink_Nlink00000001", load("razorpay", "payment_link.fetched_paid", **ids))
    provider, _ = checkout_provider(payment)
    session = provider.create_checkout(payment=payment, link=link, token=token, success_url="http://testserver/r/", cancel_url="http://testserver/c/")
    assert session.url == "https://rzp.io/i/nxrHnLJ"
    assert provider.confirm_checkout(payment=payment, link=link, params=_callback(link.pk)).status == "paid"
    forged = _callback(link.pk, secret="not-the-secret")
    assert provider.confirm_checkout(payment=payment, link=link, params=forged).status == "failed"


def test_reconciliation_ends_a_recovery_paid_outside_tinko(fake_psp, stripe_account):
    payment = payment_for(stripe_account)
    fake_psp.add("GET", "/v1/payment_intents/pi_3QfailPI0001", load("stripe", "payment_intent.retrieved_succeeded"))
    assert reconcile()["recovered"] == 1
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.RECOVERED and "outside Tinko" in payment.status_reason
    check = ReconciliationCheck.objects.get(payment=payment)
    assert check.paid and check.recovered
    # Looked at recently: the next pass leaves it alone.
    assert reconcile()["checked"] == 0


def test_reconciliation_records_an_unpaid_payment_and_changes_nothing(fake_psp, stripe_account):
    payment = payment_for(stripe_account)
    unpaid = load("stripe", "payment_intent.retrieved_succeeded")
    unpaid["status"] = "requires_payment_method"
    fake_psp.add("GET", "/v1/payment_intents/pi_3QfailPI0001", unpaid)
    assert reconcile() == {"checked": 1, "recovered": 0, "errors": 0}
    assert Payment.objects.get(pk=payment.pk).status != PaymentStatus.RECOVERED
    assert ReconciliationCheck.objects.get(payment=payment).paid is False


def test_razorpay_test_connection_uses_the_key_pair(fake_psp, razorpay_account):
    import base64

    fake_psp.add("GET", "/v1/orders", {"entity": "collection", "count": 0, "items": []})
    ok, detail = provider_for_account(razorpay_account).test_connection()
    assert ok and "test mode" in detail
    auth = fake_psp.calls("GET", "/v1/orders")[0].headers["Authorization"]
    assert base64.b64decode(auth.split()[1]).decode() == f"rzp_test_AcmeKeyId01:{RAZORPAY_KEY_SECRET}"
    fake_psp.add("GET", "/v1/orders", {"error": {"code": "BAD_REQUEST_ERROR", "description": "Authentication failed"}}, status=401)
    ok, detail = provider_for_account(razorpay_account).test_connection()
    assert not ok and "Authentication failed" in detail


def test_reconciliation_runs_as_a_periodic_job():
    from tinko import scheduler

    assert "reconcile_payments" in {job.name for job in scheduler.registered()}


def test_payment_timeline_shows_the_psp_webhooks(client, stripe_account):
    from recovery.timeline import payment_timeline
    from tests.payments.conftest import post_stripe

    post_stripe(client, stripe_account, load("stripe", "payment_intent.payment_failed"))
    payment = Payment.objects.get(reference="pi_3QfailPI0001")
    entries = [e for e in payment_timeline(payment) if e.kind == "webhook"]
    assert [e.title for e in entries] == ["Stripe webhook payment_intent.payment_failed"]
    assert entries[0].status == "processed"


def test_paying_an_invoice_that_needs_authentication_asks_the_customer(fake_psp, stripe_account):
    fake_psp.add("GET", "/v1/customers/cus_RenewAlice01", load("stripe", "customer.retrieved"))
    fake_psp.add("GET", "/v1/invoices/in_1QrenewalInv01", dict(load("stripe", "invoice.retrieved_paid"), status="open"))
    fake_psp.add("POST", "/v1/invoices/in_1QrenewalInv01/pay", {"error": {
        "type": "card_error", "code": "invoice_payment_intent_requires_action",
        "message": "This payment requires additional user action before it can be completed successfully."}}, status=402)
    payment = payment_for(stripe_account, reference="in_1QrenewalInv01")
    result = provider_for_account(stripe_account).charge_off_session(payment=payment, amount=4999, currency="EUR", idempotency_key="k3")
    assert result.requires_action and result.decline_code == "authentication_required"
    sent = fake_psp.calls("POST", "/v1/invoices/in_1QrenewalInv01/pay")[0]
    assert sent.headers["Idempotency-Key"] == "k3" and sent.form["off_session"] == "true"
    assert sent.form["payment_method"] == "pm_1QaliceCard01"
    assert "the payment's saved card" in result.card
