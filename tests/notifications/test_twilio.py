"""SMS and WhatsApp through Twilio, mocked at HTTP level with recorded responses; status callbacks and STOP/START."""

from __future__ import annotations

import pytest
from django.urls import reverse

from notifications import delivery
from notifications.models import MessagingSettings, Notification, Suppression
from recovery import runner
from tests.notifications.conftest import TWILIO_SID, due_message, ingest, twilio_signature

pytestmark = pytest.mark.django_db

PHONE_CUSTOMER = {"id": "c-phone", "phone": "+14155550123", "name": "Ada Lovelace", "timezone": "UTC"}


def sms_notification(api, twilio) -> Notification:
    payment = ingest(api, customer=PHONE_CUSTOMER)
    attempt = due_message(payment)
    assert attempt.channel == "sms"
    assert runner.run_attempt(attempt.pk) == runner.RunOutcome.SENT
    notification = Notification.objects.get(payment=payment)
    delivery.deliver(notification.pk)
    notification.refresh_from_db()
    return notification


def post_twilio(client, name, params, *, signature=None):
    path = reverse(f"notifications:{name}")
    url = "http://testserver" + path
    return client.post(path, params, headers={"X-Twilio-Signature": signature or twilio_signature(url, params)})


def test_sms_goes_to_twilios_messages_api_with_a_status_callback(api, twilio):
    notification = sms_notification(api, twilio)

    (request,) = twilio.requests
    assert request["method"] == "POST"
    assert request["uri"] == f"https://api.twilio.com/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
    assert request["data"]["To"] == "+14155550123"
    assert request["data"]["From"] == "+15005550006"
    assert request["data"]["StatusCallback"] == "http://testserver/webhooks/messages/twilio/status/"
    assert "Pay securely: http://testserver/pay/" in request["data"]["Body"]
    assert notification.status == "sent"
    assert notification.provider_message_id == "SM1f0e8ae6ade43cb3c0ce4525424e404f"
    assert notification.segments == 1


def test_whatsapp_uses_the_orgs_sender_and_approved_content_template(api, org, twilio):
    MessagingSettings.objects.create(organization=org, whatsapp_from="+15005550009",
                                     whatsapp_content_sids={"first_notice": "HX0123456789abcdef0123456789abcdef"})
    org.retry_policies.update(channels=["whatsapp"])
    payment = ingest(api, customer=PHONE_CUSTOMER)
    attempt = due_message(payment)
    assert attempt.channel == "whatsapp"
    runner.run_attempt(attempt.pk)
    delivery.deliver(Notification.objects.get(payment=payment).pk)

    (request,) = twilio.requests
    assert request["data"]["To"] == "whatsapp:+14155550123"
    assert request["data"]["From"] == "whatsapp:+15005550009"
    assert request["data"]["ContentSid"] == "HX0123456789abcdef0123456789abcdef"
    assert '"2": "$49.99"' in request["data"]["ContentVariables"]
    assert "Body" not in request["data"]


def test_status_callback_with_a_valid_signature_marks_the_message_delivered(api, twilio, client):
    notification = sms_notification(api, twilio)
    params = {"MessageSid": notification.provider_message_id, "MessageStatus": "delivered", "AccountSid": TWILIO_SID}

    assert post_twilio(client, "twilio_status", params).status_code == 204

    notification.refresh_from_db()
    assert notification.status == "delivered"
    assert notification.delivered_at is not None


def test_status_callback_with_an_invalid_signature_is_rejected(api, twilio, client):
    notification = sms_notification(api, twilio)
    params = {"MessageSid": notification.provider_message_id, "MessageStatus": "delivered"}

    response = post_twilio(client, "twilio_status", params, signature="bm90IGEgc2lnbmF0dXJl")

    assert response.status_code == 400
    notification.refresh_from_db()
    assert notification.status == "sent"


def test_undelivered_status_marks_the_message_failed_with_the_error(api, twilio, client):
    notification = sms_notification(api, twilio)
    params = {"MessageSid": notification.provider_message_id, "MessageStatus": "undelivered", "ErrorCode": "30003"}
    post_twilio(client, "twilio_status", params)
    notification.refresh_from_db()
    assert notification.status == "failed"
    assert notification.error == "Twilio error 30003"


def test_twilio_refusing_the_number_fails_the_message_without_retrying(api, twilio):
    twilio.answer(400, "error_21211_invalid_to.json")
    notification = sms_notification(api, twilio)
    assert notification.status == "failed"
    assert "21211" in notification.error
    assert notification.attempts == 1


def test_invalid_phone_number_is_suppressed_without_calling_twilio(api, twilio):
    payment = ingest(api, customer=PHONE_CUSTOMER)
    attempt = due_message(payment)
    payment.customer.phone = "0155 12"  # stored by an older import, not E.164
    payment.customer.save()

    assert runner.run_attempt(attempt.pk) == runner.RunOutcome.SKIPPED

    notification = Notification.objects.get(payment=payment)
    assert notification.status == "suppressed"
    assert notification.reason == "invalid_address"
    assert twilio.requests == []


def test_stop_reply_suppresses_sms_and_start_lifts_it(api, org, twilio, client):
    notification = sms_notification(api, twilio)
    params = {"From": "+14155550123", "To": "+15005550006", "Body": " stop ", "MessageSid": "SMinbound1"}

    response = post_twilio(client, "twilio_inbound", params)

    assert response.status_code == 200 and b"<Response>" in response.content
    stop = Suppression.objects.get(organization=org, channel="sms", address="+14155550123")
    assert stop.reason == "stop"
    notification.customer.refresh_from_db()
    assert "sms" in notification.customer.opted_out_channels

    post_twilio(client, "twilio_inbound", {**params, "Body": "START"})
    assert not Suppression.objects.exists()
    notification.customer.refresh_from_db()
    assert "sms" not in notification.customer.opted_out_channels


def test_stop_with_a_bad_signature_changes_nothing(api, twilio, client):
    sms_notification(api, twilio)
    params = {"From": "+14155550123", "To": "+15005550006", "Body": "STOP"}
    assert post_twilio(client, "twilio_inbound", params, signature="forged").status_code == 400
    assert not Suppression.objects.exists()
