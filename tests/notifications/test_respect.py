"""Respecting the customer: quiet hours, one message a day, opt-outs, STOP, bounces and complaints."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from notifications.models import Notification, Suppression
from recovery import runner
from recovery.models import AttemptStatus, RecoveryLink, RetryPolicy
from tests.notifications.conftest import due_message, ingest, postmark_payload, twilio_signature

pytestmark = pytest.mark.django_db


def test_message_in_quiet_hours_is_suppressed_and_deferred_to_their_end(api):
    payment = ingest(api, customer={"id": "c1", "email": "ada@example.com", "timezone": "Asia/Kolkata"})
    attempt = due_message(payment, quiet_hours=True)
    now_local = timezone.now().astimezone(timezone.get_fixed_timezone(330))
    # Quiet from an hour ago to an hour from now in the customer's zone, whatever the time of the run.
    RetryPolicy.objects.filter(pk=payment.policy_id).update(
        quiet_hours_start=(now_local - timedelta(hours=1)).time().replace(microsecond=0),
        quiet_hours_end=(now_local + timedelta(hours=1)).time().replace(second=0, microsecond=0),
    )

    assert runner.run_attempt(attempt.pk) == runner.RunOutcome.DEFERRED

    notification = Notification.objects.get(payment=payment)
    assert notification.status == "suppressed"
    assert notification.reason == "quiet_hours"
    assert "Asia/Kolkata" in notification.error
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.SCHEDULED
    assert timedelta(minutes=58) < attempt.scheduled_for - timezone.now() <= timedelta(hours=1)
    assert not RecoveryLink.objects.exists()  # no link is made for a message that did not go


def test_second_message_within_24_hours_is_suppressed_by_the_frequency_cap(api):
    customer = {"id": "c1", "email": "ada@example.com", "timezone": "UTC"}
    first = ingest(api, customer=customer)
    assert runner.run_attempt(due_message(first).pk) == runner.RunOutcome.SENT
    second = ingest(api, customer=customer)
    attempt = due_message(second)

    assert runner.run_attempt(attempt.pk) == runner.RunOutcome.DEFERRED

    notification = Notification.objects.get(payment=second)
    assert (notification.status, notification.reason) == ("suppressed", "frequency_cap")
    attempt.refresh_from_db()
    sent = Notification.objects.get(payment=first)
    assert attempt.scheduled_for == sent.created_at + timedelta(hours=24)


def test_opted_out_customer_gets_a_suppressed_record_not_a_message(api):
    payment = ingest(api)
    attempt = due_message(payment)
    payment.customer.opted_out_channels = ["email"]
    payment.customer.save()

    assert runner.run_attempt(attempt.pk) == runner.RunOutcome.SKIPPED

    notification = Notification.objects.get(payment=payment)
    assert (notification.status, notification.reason) == ("suppressed", "opted_out")
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.SKIPPED
    assert "opted out" in attempt.outcome


def test_stop_reply_suppresses_the_next_sms_with_reason_stop(api, twilio, client):
    payment = ingest(api, customer={"id": "c1", "phone": "+14155550123", "timezone": "UTC"})
    attempt = due_message(payment)
    Notification.objects.create(organization=payment.organization, channel="sms", recipient="+14155550123",
                                sender="+15005550006", status="delivered")  # an earlier message from our number
    params = {"From": "+14155550123", "To": "+15005550006", "Body": "STOP"}
    client.post("/webhooks/messages/twilio/inbound/", params,
                headers={"X-Twilio-Signature": twilio_signature("http://testserver/webhooks/messages/twilio/inbound/", params)})

    assert runner.run_attempt(attempt.pk) == runner.RunOutcome.SKIPPED

    notification = Notification.objects.get(payment=payment)
    assert (notification.status, notification.reason) == ("suppressed", "stop")
    assert twilio.requests == []


def _postmark(client, settings, payload):
    settings.ANYMAIL = {"WEBHOOK_SECRET": "hooks:s3cret-value"}
    auth = base64.b64encode(b"hooks:s3cret-value").decode()
    return client.post("/webhooks/messages/anymail/postmark/tracking/", json.dumps(payload),
                       content_type="application/json", headers={"Authorization": f"Basic {auth}"})


def _sent_email(api) -> Notification:
    from notifications import delivery

    payment = ingest(api)
    runner.run_attempt(due_message(payment).pk)
    notification = Notification.objects.get(payment=payment)
    delivery.deliver(notification.pk)
    notification.refresh_from_db()
    return notification


def test_bounce_reported_by_the_esp_marks_bounced_and_suppresses_the_address(api, org, client, settings):
    notification = _sent_email(api)

    response = _postmark(client, settings, postmark_payload("postmark_bounce.json", notification.public_id))

    assert response.status_code == 200
    notification.refresh_from_db()
    assert notification.status == "bounced"
    suppression = Suppression.objects.get(organization=org, channel="email", address="ada@example.com")
    assert suppression.reason == "bounced"
    # A message to that address for another customer record is suppressed too, with the reason.
    other = ingest(api, customer={"id": "c2", "email": "ada@example.com", "timezone": "UTC"})
    assert runner.run_attempt(due_message(other).pk) == runner.RunOutcome.SKIPPED
    assert Notification.objects.get(payment=other).reason == "bounced"


def test_complaint_suppresses_the_address(api, org, client, settings):
    notification = _sent_email(api)
    payload = {"RecordType": "SpamComplaint", "MessageID": notification.provider_message_id, "ID": 1,
               "Email": "ada@example.com", "BouncedAt": "2026-11-28T09:00:00Z", "Type": "SpamComplaint",
               "TypeCode": 512, "Metadata": {"notification": notification.public_id}, "Description": "", "Details": ""}
    assert _postmark(client, settings, payload).status_code == 200
    assert Suppression.objects.get(organization=org, address="ada@example.com").reason == "complained"


def test_tracking_webhook_without_the_shared_secret_is_refused(api, client, settings):
    notification = _sent_email(api)
    settings.ANYMAIL = {"WEBHOOK_SECRET": "hooks:s3cret-value"}
    response = client.post("/webhooks/messages/anymail/postmark/tracking/",
                           json.dumps(postmark_payload("postmark_bounce.json", notification.public_id)),
                           content_type="application/json")
    assert response.status_code in (400, 401, 403)
    notification.refresh_from_db()
    assert notification.status == "sent"
    assert not Suppression.objects.exists()
