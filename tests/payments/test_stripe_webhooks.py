"""Stripe webhooks with recorded payloads and real signatures: every handled event, bad input, duplicates."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from payments.models import ProviderSuccess, WebhookMessage, WebhookStatus
from recovery.models import AttemptStatus, FailureEvent, Payment, PaymentStatus, RecoveryAttempt
from recovery.services import create_link
from tests.conftest import always_quiet, locked_elsewhere
from tests.payments.conftest import post_stripe, process_inbox
from tests.payments.psp import load

pytestmark = pytest.mark.django_db


def test_payment_intent_failed_becomes_a_classified_failure(client, stripe_account):
    response = post_stripe(client, stripe_account, load("stripe", "payment_intent.payment_failed"))
    assert response.status_code == 200, response.content
    payment = Payment.objects.get(organization=stripe_account.organization, reference="pi_3QfailPI0001")
    assert payment.provider == "stripe" and payment.amount == 4999 and payment.currency == "EUR"
    assert payment.provider_account == stripe_account
    assert payment.provider_customer_id == "cus_RenewAlice01"
    assert payment.provider_payment_method_id == "pm_1QaliceCard01"
    assert (payment.card_brand, payment.card_last4, payment.card_fingerprint) == ("mastercard", "4444", "Xt5EWLLDS7FJjR1c")
    assert payment.customer.email == "alice@example.com"
    event = FailureEvent.objects.get(payment=payment)
    assert (event.source, event.external_id) == ("stripe", "ch_3QfailPI0001")
    assert (event.code, event.decline_code, event.advice_code, event.network_advice_code, event.network_decline_code) == (
        "card_declined", "insufficient_funds", "try_again_later", "24", "51")
    assert event.category == "insufficient_funds"
    # A saved card at a connected account: the plan is an automatic re-charge.
    assert RecoveryAttempt.objects.get(payment=payment, status=AttemptStatus.SCHEDULED).kind == "auto_retry"
    message = WebhookMessage.objects.get()
    assert (message.status, message.event_id, message.response_status) == (WebhookStatus.PROCESSED, "evt_3QfailPI0001", 200)


def test_charge_failed_reads_outcome_codes_and_merchant_reference(client, stripe_account):
    assert post_stripe(client, stripe_account, load("stripe", "charge.failed")).status_code == 200
    payment = Payment.objects.get(reference="order-1042")
    event = FailureEvent.objects.get(payment=payment)
    assert (event.decline_code, event.advice_code, event.network_advice_code, event.network_decline_code) == (
        "do_not_honor", "do_not_try_again", "03", "05")
    # Mastercard MAC 03: the network forbids any retry.
    assert event.network_stop
    assert payment.provider_payment_id == "pi_3QchargeFail01"


def test_payment_intent_and_charge_failure_of_one_charge_count_once(client, stripe_account):
    intent_event = load("stripe", "payment_intent.payment_failed")
    charge_event = load("stripe", "charge.failed")
    charge = charge_event["data"]["object"]
    charge.update(id="ch_3QfailPI0001", payment_intent="pi_3QfailPI0001", metadata={})
    post_stripe(client, stripe_account, intent_event)
    post_stripe(client, stripe_account, charge_event)
    payment = Payment.objects.get(reference="pi_3QfailPI0001")
    assert payment.failure_count == 1
    assert FailureEvent.objects.filter(payment=payment).count() == 1


def test_invoice_payment_failed_refetches_the_intent_for_its_codes(client, fake_psp, stripe_account):
    fake_psp.add("GET", "/v1/payment_intents/pi_3QrenewalPI001", load("stripe", "payment_intent.renewal"))
    assert post_stripe(client, stripe_account, load("stripe", "invoice.payment_failed")).status_code == 200
    payment = Payment.objects.get(reference="in_1QrenewalInv01")
    assert payment.amount == 2900 and payment.provider_payment_id == "pi_3QrenewalPI001"
    event = FailureEvent.objects.get(payment=payment)
    assert (event.code, event.decline_code, event.category) == ("expired_card", "expired_card", "expired_card")
    assert payment.customer.email == "carol@example.com"
    # The secret key authenticated the re-fetch.
    assert fake_psp.calls("GET", "/v1/payment_intents/pi_3QrenewalPI001")[0].headers["Authorization"] == (
        "Bearer sk_test_51AcmeSecretKey0000004242")


def _failed_payment(client, stripe_account):
    post_stripe(client, stripe_account, load("stripe", "payment_intent.payment_failed"))
    return Payment.objects.get(reference="pi_3QfailPI0001")


def test_payment_intent_succeeded_is_refetched_and_ends_the_recovery(client, fake_psp, stripe_account):
    payment = _failed_payment(client, stripe_account)
    fake_psp.add("GET", "/v1/payment_intents/pi_3QfailPI0001", load("stripe", "payment_intent.retrieved_succeeded"))
    assert post_stripe(client, stripe_account, load("stripe", "payment_intent.succeeded")).status_code == 200
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.RECOVERED and payment.recovered_amount == 4999
    assert not RecoveryAttempt.objects.filter(payment=payment, status=AttemptStatus.SCHEDULED).exists()


def test_a_success_body_is_not_believed_without_the_psp(client, fake_psp, stripe_account):
    payment = _failed_payment(client, stripe_account)
    retrieved = load("stripe", "payment_intent.retrieved_succeeded")
    retrieved["status"] = "requires_payment_method"
    fake_psp.add("GET", "/v1/payment_intents/pi_3QfailPI0001", retrieved)
    assert post_stripe(client, stripe_account, load("stripe", "payment_intent.succeeded")).status_code == 200
    payment.refresh_from_db()
    assert payment.status != PaymentStatus.RECOVERED


def test_success_before_failure_still_ends_recovered(client, fake_psp, stripe_account):
    fake_psp.add("GET", "/v1/payment_intents/pi_3QfailPI0001", load("stripe", "payment_intent.retrieved_succeeded"))
    assert post_stripe(client, stripe_account, load("stripe", "payment_intent.succeeded")).status_code == 200
    assert not Payment.objects.exists()
    assert ProviderSuccess.objects.get().references.split() == ["pi_3QfailPI0001"]
    payment = _failed_payment(client, stripe_account)
    assert payment.status == PaymentStatus.RECOVERED
    assert not RecoveryAttempt.objects.filter(payment=payment, status__in=RecoveryAttempt.ACTIVE).exists()


def test_failure_of_an_already_recovered_payment_does_not_reopen_it(client, fake_psp, stripe_account):
    payment = _failed_payment(client, stripe_account)
    fake_psp.add("GET", "/v1/payment_intents/pi_3QfailPI0001", load("stripe", "payment_intent.retrieved_succeeded"))
    post_stripe(client, stripe_account, load("stripe", "payment_intent.succeeded"))
    late = load("stripe", "charge.failed")
    late["data"]["object"].update(id="ch_late", payment_intent="pi_3QfailPI0001", metadata={})
    assert post_stripe(client, stripe_account, late).status_code == 200
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.RECOVERED and payment.failure_count == 1


def test_invoice_paid_ends_the_renewal_recovery(client, fake_psp, stripe_account):
    fake_psp.add("GET", "/v1/payment_intents/pi_3QrenewalPI001", load("stripe", "payment_intent.renewal"))
    fake_psp.add("GET", "/v1/invoices/in_1QrenewalInv01", load("stripe", "invoice.retrieved_paid"))
    post_stripe(client, stripe_account, load("stripe", "invoice.payment_failed"))
    assert post_stripe(client, stripe_account, load("stripe", "invoice.paid")).status_code == 200
    payment = Payment.objects.get(reference="in_1QrenewalInv01")
    assert payment.status == PaymentStatus.RECOVERED and payment.recovered_amount == 2900


def test_checkout_session_completed_recovers_with_the_links_attribution(client, fake_psp, stripe_account):
    payment = _failed_payment(client, stripe_account)
    link, _ = create_link(payment=payment)
    ids = {"LINK_ID": link.pk, "PAYMENT_ID": payment.pk, "REFERENCE": payment.reference}
    fake_psp.add("GET", "/v1/checkout/sessions/cs_test_a1QcheckoutSess01", load("stripe", "checkout.session.retrieved", **ids))
    assert post_stripe(client, stripe_account, load("stripe", "checkout.session.completed", **ids)).status_code == 200
    payment.refresh_from_db()
    link.refresh_from_db()
    assert payment.status == PaymentStatus.RECOVERED and payment.recovered_channel == "link"
    assert link.status == "completed"


def test_card_updater_replans_a_recharge_with_the_new_card(client, fake_psp, stripe_account):
    fake_psp.add("GET", "/v1/payment_intents/pi_3QrenewalPI001", load("stripe", "payment_intent.renewal"))
    post_stripe(client, stripe_account, load("stripe", "invoice.payment_failed"))
    payment = Payment.objects.get(reference="in_1QrenewalInv01")
    assert not RecoveryAttempt.objects.filter(payment=payment, kind="auto_retry").exists()
    assert post_stripe(client, stripe_account, load("stripe", "payment_method.automatically_updated")).status_code == 200
    payment.refresh_from_db()
    assert (payment.card_last4, payment.card_exp_year) == ("4242", 2029)
    retry = RecoveryAttempt.objects.get(payment=payment, kind="auto_retry", status=AttemptStatus.SCHEDULED)
    assert retry.channel == "psp"
    assert "The card was updated (Stripe card updater)" in retry.reason


def test_card_updater_inside_quiet_hours_recharges_when_they_end(client, fake_psp, stripe_account):
    fake_psp.add("GET", "/v1/payment_intents/pi_3QrenewalPI001", load("stripe", "payment_intent.renewal"))
    post_stripe(client, stripe_account, load("stripe", "invoice.payment_failed"))
    payment = Payment.objects.get(reference="in_1QrenewalInv01")
    now = timezone.now()
    always_quiet(payment)
    assert post_stripe(client, stripe_account, load("stripe", "payment_method.automatically_updated")).status_code == 200
    retry = RecoveryAttempt.objects.get(payment=payment, kind="auto_retry", status=AttemptStatus.SCHEDULED)
    assert retry.scheduled_for > now + timedelta(hours=23)
    assert "outside quiet hours" in retry.reason


# --- bad input: the right status, no change to payments, still in the inbox -----------


def _assert_no_payment_change_and_stored(count=1):
    assert not Payment.objects.exists()
    assert WebhookMessage.objects.count() == count


def test_wrong_signature_is_refused(client, stripe_account):
    response = post_stripe(client, stripe_account, load("stripe", "payment_intent.payment_failed"), secret="whsec_wrong")
    assert response.status_code == 400
    _assert_no_payment_change_and_stored()
    assert WebhookMessage.objects.get().status == WebhookStatus.REJECTED


def test_missing_signature_header_is_refused(client, stripe_account):
    response = post_stripe(client, stripe_account, load("stripe", "payment_intent.payment_failed"), signature=False)
    assert response.status_code == 400 and "missing" in response.json()["error"]
    _assert_no_payment_change_and_stored()


def test_signature_older_than_300_seconds_is_refused(client, stripe_account):
    old = int(time.time()) - 301
    response = post_stripe(client, stripe_account, load("stripe", "payment_intent.payment_failed"), timestamp=old)
    assert response.status_code == 400
    _assert_no_payment_change_and_stored()


def test_unknown_account_is_404_and_stored(client, stripe_account):
    event = load("stripe", "payment_intent.payment_failed")
    body = json.dumps(event).encode()
    response = client.post("/webhooks/stripe/no-such-account/", data=body, content_type="application/json",
                           HTTP_STRIPE_SIGNATURE="t=1,v1=00")
    assert response.status_code == 404
    message = WebhookMessage.objects.get()
    assert message.account is None and message.account_public_id == "no-such-account"
    assert message.body == body.decode()
    assert not Payment.objects.exists()


def test_non_json_body_with_a_valid_signature_is_refused(client, stripe_account):
    response = post_stripe(client, stripe_account, None, body=b"this is not json")
    assert response.status_code == 400 and "JSON" in response.json()["error"]
    _assert_no_payment_change_and_stored()


def test_unknown_event_type_is_acknowledged_and_ignored(client, stripe_account):
    response = post_stripe(client, stripe_account, load("stripe", "customer.created"))
    assert response.status_code == 200
    _assert_no_payment_change_and_stored()
    assert WebhookMessage.objects.get().status == WebhookStatus.IGNORED


def test_success_for_an_unknown_payment_changes_no_payment(client, fake_psp, stripe_account):
    fake_psp.add("GET", "/v1/payment_intents/pi_3QfailPI0001", load("stripe", "payment_intent.retrieved_succeeded"))
    response = post_stripe(client, stripe_account, load("stripe", "payment_intent.succeeded"))
    assert response.status_code == 200
    _assert_no_payment_change_and_stored()
    assert "matches no payment" in WebhookMessage.objects.get().result


def test_psp_unreachable_on_refetch_is_retried_with_the_error_recorded(client, fake_psp, stripe_account):
    # No route registered: the re-fetch gets a 404 from the PSP.
    response = post_stripe(client, stripe_account, load("stripe", "payment_intent.succeeded"))
    assert response.status_code == 200
    message = WebhookMessage.objects.get()
    assert (message.status, message.tries) == (WebhookStatus.RETRYING, 1) and message.error
    assert message.next_try_at > timezone.now()


def test_other_organizations_account_url_cannot_feed_this_one(client, stripe_account, other_org):
    from payments import accounts

    globex = accounts.connect_account(
        organization=other_org, provider="stripe", name="Globex", secrets={
            "secret_key": "sk_test_globex000000000000", "webhook_secret": "whsec_globex"})
    # Signed with Acme's secret but sent to Globex's URL.
    response = post_stripe(client, globex, load("stripe", "payment_intent.payment_failed"))
    assert response.status_code == 400
    assert not Payment.objects.exists()


def test_duplicate_stripe_event_is_absorbed(client, stripe_account):
    event = load("stripe", "payment_intent.payment_failed")
    assert post_stripe(client, stripe_account, event).status_code == 200
    response = post_stripe(client, stripe_account, event)
    assert response.status_code == 200 and response.json() == {"detail": "Already received."}
    message = WebhookMessage.objects.get()
    assert (message.status, message.deliveries, message.tries) == (WebhookStatus.PROCESSED, 2, 1)
    assert Payment.objects.get().failure_count == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("default_rules")
def test_same_event_delivered_ten_times_concurrently_is_processed_once(stripe_account):
    event = load("stripe", "payment_intent.payment_failed")
    barrier = threading.Barrier(10)
    codes = []

    def deliver():
        try:
            barrier.wait()
            codes.append(post_stripe(Client(), stripe_account, event).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert codes == [200] * 10
    message = WebhookMessage.objects.get()
    assert (message.status, message.deliveries) == (WebhookStatus.PROCESSED, 10)
    assert FailureEvent.objects.count() == 1 and Payment.objects.get().failure_count == 1


def test_staff_can_replay_a_failed_message_from_admin(client, fake_psp, stripe_account, django_user_model):
    payment = _failed_payment(client, stripe_account)
    assert post_stripe(client, stripe_account, load("stripe", "payment_intent.succeeded")).status_code == 200
    failed = WebhookMessage.objects.get(status=WebhookStatus.RETRYING)
    fake_psp.add("GET", "/v1/payment_intents/pi_3QfailPI0001", load("stripe", "payment_intent.retrieved_succeeded"))
    staff = django_user_model.objects.create_superuser(email="staff@tinko.test", password="x" * 12)
    admin_client = Client()
    admin_client.force_login(staff)
    response = admin_client.post("/admin/payments/webhookmessage/", {"action": "replay", "_selected_action": [failed.pk]}, follow=True)
    assert response.status_code == 200
    failed.refresh_from_db()
    payment.refresh_from_db()
    assert (failed.status, failed.replays, failed.tries) == (WebhookStatus.PROCESSED, 1, 2)
    assert payment.status == PaymentStatus.RECOVERED


def test_admin_never_shows_credentials(stripe_account, django_user_model):
    staff = django_user_model.objects.create_superuser(email="staff@tinko.test", password="x" * 12)
    admin_client = Client()
    admin_client.force_login(staff)
    page = admin_client.get(f"/admin/payments/provideraccount/{stripe_account.pk}/change/").content.decode()
    assert "sk_test_…4242" in page
    assert "sk_test_51AcmeSecretKey0000004242" not in page and "whsec_test" not in page
    assert stripe_account.credentials["secret_key"] not in page


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("default_rules")
def test_a_payment_locked_too_long_is_retried_later_and_then_applied(stripe_account, settings):
    settings.TINKO_WEBHOOK_LOCK_TIMEOUT_MS = 200
    event = load("stripe", "payment_intent.payment_failed")
    assert post_stripe(Client(), stripe_account, event).status_code == 200
    again = load("stripe", "charge.failed")
    again["data"]["object"].update(id="ch_second", payment_intent="pi_3QfailPI0001", metadata={})
    with locked_elsewhere(Payment, Payment.objects.get(reference="pi_3QfailPI0001").pk):
        response = post_stripe(Client(), stripe_account, again)
    assert response.status_code == 200
    busy = WebhookMessage.objects.get(received_event_id=again["id"])
    assert (busy.status, busy.tries) == (WebhookStatus.RETRYING, 1) and "lock" in busy.error.lower()
    assert Payment.objects.get().failure_count == 1
    # The retry is due after its backoff; then it goes through.
    WebhookMessage.objects.filter(pk=busy.pk).update(next_try_at=timezone.now())
    assert process_inbox() == 1
    busy.refresh_from_db()
    assert (busy.status, busy.tries) == (WebhookStatus.PROCESSED, 2)
    assert Payment.objects.get().failure_count == 2


def test_a_failed_try_on_the_pay_page_does_not_replan_the_recovery(client, stripe_account):
    payment = _failed_payment(client, stripe_account)
    link, _ = create_link(payment=payment)
    attempts = list(RecoveryAttempt.objects.filter(payment=payment).values_list("pk", "status"))
    failed_try = load("stripe", "payment_intent.payment_failed")
    failed_try["id"] = "evt_checkout_try"
    intent = failed_try["data"]["object"]
    intent.update(id="pi_checkout_try", metadata={"tinko_link_id": str(link.pk), "tinko_reference": payment.reference})
    intent["last_payment_error"]["charge"] = "ch_checkout_try"
    assert post_stripe(client, stripe_account, failed_try).status_code == 200
    payment.refresh_from_db()
    assert payment.failure_count == 1
    assert list(RecoveryAttempt.objects.filter(payment=payment).values_list("pk", "status")) == attempts
    link.refresh_from_db()
    assert link.status == "active"
