"""Razorpay webhooks with recorded payloads and real signatures."""

from __future__ import annotations

import pytest

from payments.models import WebhookMessage, WebhookStatus
from recovery.models import FailureEvent, Payment, PaymentStatus
from recovery.services import create_link
from tests.payments.conftest import post_razorpay
from tests.payments.psp import load

pytestmark = pytest.mark.django_db


def _failed(client, account):
    assert post_razorpay(client, account, load("razorpay", "payment.failed"), event_id="evt_fail").status_code == 200
    return Payment.objects.get(reference="order_Nrenew0000001")


def test_payment_failed_becomes_a_classified_failure(client, razorpay_account):
    payment = _failed(client, razorpay_account)
    assert (payment.amount, payment.currency, payment.provider) == (149900, "INR", "razorpay")
    assert (payment.provider_customer_id, payment.provider_payment_method_id) == ("cust_Nravi000000001", "token_Nravi00000001")
    assert payment.customer.phone == "+919876543210"
    event = FailureEvent.objects.get(payment=payment)
    assert (event.source, event.code, event.decline_code) == ("razorpay", "BAD_REQUEST_ERROR", "insufficient_funds")
    assert event.category == "insufficient_funds"


def test_payment_captured_is_refetched_and_ends_the_recovery(client, fake_psp, razorpay_account):
    payment = _failed(client, razorpay_account)
    fake_psp.add("GET", "/v1/payments/pay_Nok000000001", load("razorpay", "payment.fetched_captured"))
    assert post_razorpay(client, razorpay_account, load("razorpay", "payment.captured"), event_id="evt_cap").status_code == 200
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.RECOVERED and payment.recovered_amount == 149900
    assert fake_psp.calls("GET", "/v1/payments/pay_Nok000000001")[0].headers["Authorization"].startswith("Basic ")


def test_order_paid_ends_the_recovery(client, fake_psp, razorpay_account):
    payment = _failed(client, razorpay_account)
    fake_psp.add("GET", "/v1/orders/order_Nrenew0000001", load("razorpay", "order.fetched_paid"))
    assert post_razorpay(client, razorpay_account, load("razorpay", "order.paid"), event_id="evt_ord").status_code == 200
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.RECOVERED


def test_order_paid_before_the_failure_still_ends_recovered(client, fake_psp, razorpay_account):
    fake_psp.add("GET", "/v1/orders/order_Nrenew0000001", load("razorpay", "order.fetched_paid"))
    post_razorpay(client, razorpay_account, load("razorpay", "order.paid"), event_id="evt_ord")
    assert _failed(client, razorpay_account).status == PaymentStatus.RECOVERED


def test_payment_link_paid_recovers_with_the_links_attribution(client, fake_psp, razorpay_account):
    payment = _failed(client, razorpay_account)
    link, _ = create_link(payment=payment)
    ids = {"LINK_ID": link.pk, "PAYMENT_ID": payment.pk, "REFERENCE": payment.reference}
    fake_psp.add("GET", "/v1/payment_links/plink_Nlink00000001", load("razorpay", "payment_link.fetched_paid", **ids))
    response = post_razorpay(client, razorpay_account, load("razorpay", "payment_link.paid", **ids), event_id="evt_pl")
    assert response.status_code == 200
    payment.refresh_from_db()
    link.refresh_from_db()
    assert payment.status == PaymentStatus.RECOVERED and link.status == "completed"


def test_wrong_signature_is_refused(client, razorpay_account):
    response = post_razorpay(client, razorpay_account, load("razorpay", "payment.failed"), secret="other")
    assert response.status_code == 400
    assert not Payment.objects.exists() and WebhookMessage.objects.get().status == WebhookStatus.REJECTED


def test_missing_signature_or_event_id_is_refused(client, razorpay_account):
    assert post_razorpay(client, razorpay_account, load("razorpay", "payment.failed"), signature=False).status_code == 400
    assert post_razorpay(client, razorpay_account, load("razorpay", "payment.failed"), event_id="").status_code == 400
    assert not Payment.objects.exists() and WebhookMessage.objects.count() == 2


def test_non_json_and_unknown_events(client, razorpay_account):
    assert post_razorpay(client, razorpay_account, None, body=b"<xml/>").status_code == 400
    event = load("razorpay", "payment.failed")
    event["event"] = "refund.processed"
    assert post_razorpay(client, razorpay_account, event).status_code == 200
    assert not Payment.objects.exists()
    assert sorted(WebhookMessage.objects.values_list("status", flat=True)) == [WebhookStatus.IGNORED, WebhookStatus.REJECTED]


def test_duplicate_event_id_is_absorbed(client, razorpay_account):
    event = load("razorpay", "payment.failed")
    post_razorpay(client, razorpay_account, event, event_id="evt_same")
    post_razorpay(client, razorpay_account, event, event_id="evt_same")
    assert Payment.objects.get().failure_count == 1
    # The second delivery is absorbed by the INSERT that would have stored it: one row, two deliveries.
    message = WebhookMessage.objects.get()
    assert (message.status, message.deliveries) == (WebhookStatus.PROCESSED, 2)


def test_decline_of_tinkos_own_recharge_is_kept_with_its_payment(client, razorpay_account):
    payment = _failed(client, razorpay_account)
    attempt = payment.attempts.get(kind="auto_retry")
    event = load("razorpay", "payment.failed")
    event["payload"]["payment"]["entity"].update(id="pay_Nretryfail01", notes={"tinko_attempt": attempt.idempotency_key})
    assert post_razorpay(client, razorpay_account, event, event_id="evt_own_decline").status_code == 200
    message = WebhookMessage.objects.get(event_id="evt_own_decline")
    assert message.status == WebhookStatus.PROCESSED and "Tinko's own re-charge" in message.result
    assert message.payment_id == payment.pk
    # The attempt recorded the decline itself: the event adds no failure.
    assert FailureEvent.objects.filter(payment=payment).count() == 1


def test_own_recharge_key_of_another_organization_links_nothing(client, razorpay_account, other_org):
    from recovery.models import RecoveryAttempt

    payment = _failed(client, razorpay_account)
    foreign_key = payment.attempts.get(kind="auto_retry").idempotency_key
    RecoveryAttempt.objects.filter(idempotency_key=foreign_key).update(organization=other_org)
    event = load("razorpay", "payment.failed")
    event["payload"]["payment"]["entity"].update(id="pay_Nretryfail02", notes={"tinko_attempt": foreign_key})
    assert post_razorpay(client, razorpay_account, event, event_id="evt_foreign").status_code == 200
    assert WebhookMessage.objects.get(event_id="evt_foreign").payment_id is None


def test_capture_of_tinkos_own_recharge_named_only_by_its_attempt_ends_the_recovery(client, fake_psp, razorpay_account):
    payment = _failed(client, razorpay_account)
    attempt = payment.attempts.get(kind="auto_retry")
    captured = load("razorpay", "payment.fetched_captured")
    captured.update(id="pay_Nretryok0001", order_id="order_Ntinko000001", notes={"tinko_attempt": attempt.idempotency_key})
    fake_psp.add("GET", "/v1/payments/pay_Nretryok0001", captured)
    event = load("razorpay", "payment.captured")
    event["payload"]["payment"]["entity"].update(id="pay_Nretryok0001", order_id="order_Ntinko000001",
                                                 notes={"tinko_attempt": attempt.idempotency_key})
    assert post_razorpay(client, razorpay_account, event, event_id="evt_own_capture").status_code == 200
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.RECOVERED and payment.recovered_attempt_id == attempt.pk
def test_a_failure_without_contact_reads_the_razorpay_customer_once(client, fake_psp, razorpay_account):
    fake_psp.add("GET", "/v1/customers/cust_Nravi000000001", load("razorpay", "customer.fetched"))
    event = load("razorpay", "payment.failed")
    event["payload"]["payment"]["entity"].update(email="", contact="")
    assert post_razorpay(client, razorpay_account, event).status_code == 200
    payment = Payment.objects.get(reference="order_Nrenew0000001")
    assert (payment.customer.email, payment.customer.phone, payment.customer.name) == (
        "ravi@example.in", "+919876543210", "Ravi Kumar")
    assert payment.customer.provider_fetched_at is not None
    event["payload"]["payment"]["entity"].update(id="pay_Nfail00000002")
    assert post_razorpay(client, razorpay_account, event, event_id="evt_rzp_2").status_code == 200
    assert len(fake_psp.calls("GET", "/v1/customers/cust_Nravi000000001")) == 1
